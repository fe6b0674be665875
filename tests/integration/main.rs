//! Integration tests: the real `strongroom` binary, driven through its CLI
//! and over gRPC, as an operator or a sidecar would.
//!
//! One test binary (ripgrep's layout) keeps link time down; tests run in
//! parallel, each daemon in its own temporary directory on port 0.

// A test that cannot set itself up should stop at once with the reason:
// unwrap and expect are how tests say so (the crate's lints forbid them
// elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod access;
mod audit;
mod awskms;
mod bad_input;
mod byok_import;
mod cli_habits;
mod config;
mod config_multiseal;
mod crash;
mod diagnose_config;
mod diagnose_listener;
mod diagnose_readonly;
mod diagnose_seal;
mod diagnose_store;
mod envelope;
mod golden;
mod grpc;
mod ha;
mod ha_faults;
mod ha_forwarding;
mod ha_model;
mod hardening;
mod http_agent;
mod http_ha;
mod http_keymgmt;
mod http_kv;
mod http_kv_more;
mod http_metrics;
mod http_policy_paths;
mod http_quorum;
mod http_sys;
mod http_token;
mod http_transit;
mod keymgmt_cli;
mod keys;
mod kms_errors;
mod kv_versions;
mod layering;
mod lifecycle;
mod localstack;
mod migration;
mod multiseal;
mod multiseal_break_glass;
mod multiseal_emergency;
mod multiseal_ha;
mod package;
mod postgres;
mod postgres_ha;
mod python;
mod quorum;
mod recipients;
mod seal_backends;
mod secrets;
mod security;
mod startup;
mod storage;
mod storage_migrate;
mod support;
mod systemd;
mod terraform;
mod tls;
