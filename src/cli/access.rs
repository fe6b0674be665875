//! `strongroom token …` and `strongroom policy …`: who may do what.

use std::io::Read;

use clap::Subcommand;
use serde::Serialize;
use zeroize::Zeroizing;

use super::client::{ClientArgs, call};
use super::output::{out, outln, print_json, print_table};
use super::{CliError, EXIT_OK, Format};
use crate::proto::{
    self, policy_client::PolicyClient, sys_client::SysClient, token_client::TokenClient,
};
use crate::time::format_unix;

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Make a token; it is a child of the caller's token unless --orphan.
    Create {
        /// A policy for it; repeat for several (default: the caller's own).
        #[arg(long = "policy", value_name = "NAME")]
        policies: Vec<String>,
        /// Lifetime such as 30m or 24h (default and maximum 768h; a root
        /// token made by root never expires by default).
        #[arg(long, value_name = "DURATION")]
        ttl: Option<String>,
        /// Renewals may extend it (default true, as Vault).
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
        renewable: bool,
        /// Calls it may make before it is revoked; 0: unlimited.
        #[arg(long, default_value_t = 0, value_name = "N")]
        use_limit: u32,
        /// No parent: it outlives the caller's token (needs sudo on auth/token/create).
        #[arg(long)]
        orphan: bool,
        /// A periodic token (needs sudo on auth/token/create): no maximum
        /// lifetime; each renewal makes it good for this long again (at
        /// most 768h). --ttl is then ignored.
        #[arg(long, value_name = "DURATION")]
        period: Option<String>,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Show a token's details: the caller's own, TOKEN's ("-": read it from
    /// stdin), or --accessor's.
    Lookup {
        token: Option<String>,
        #[arg(long, conflicts_with = "token")]
        accessor: Option<String>,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Extend a renewable token: the caller's own, or TOKEN's ("-": stdin).
    Renew {
        token: Option<String>,
        /// Extend by this much from now (default: the token's own ttl).
        #[arg(long, value_name = "DURATION")]
        increment: Option<String>,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Revoke a token and every token made from it: TOKEN ("-": stdin),
    /// --accessor's, or the caller's own with --self.
    Revoke {
        #[arg(required_unless_present_any = ["accessor", "self_"])]
        token: Option<String>,
        #[arg(long, conflicts_with_all = ["token", "self_"])]
        accessor: Option<String>,
        #[arg(long = "self", conflicts_with = "token")]
        self_: bool,
    },
    /// List the accessors of every root token.
    ListAccessors {
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Revoke the token behind ACCESSOR (a lost root token, say).
    RevokeAccessor {
        /// The token's accessor, from `token list-accessors`.
        accessor: String,
    },
}

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Write policy NAME from FILE ("-": stdin).
    Write { name: String, file: String },
    /// Print policy NAME.
    Read { name: String },
    /// List the policies.
    List {
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Delete policy NAME.
    Delete { name: String },
}

/// A duration flag in seconds.
fn seconds(flag: &str, text: Option<&str>) -> Result<u64, CliError> {
    let Some(text) = text else {
        return Ok(0);
    };
    crate::config::parse_duration(text)
        .map(|d| d.as_secs())
        .ok_or_else(|| {
            CliError::Usage(format!(
                "--{flag} {text:?} is not a duration such as 90s, 30m or 24h"
            ))
        })
}

/// A token given on the command line, or read from stdin for "-".
fn token_arg(token: Option<String>) -> Result<Zeroizing<String>, CliError> {
    let token = Zeroizing::new(token.unwrap_or_default());
    if token.as_str() != "-" {
        return Ok(token);
    }
    let mut text = Zeroizing::new(String::new());
    std::io::stdin()
        .read_to_string(&mut text)
        .map_err(|e| CliError::Usage(format!("cannot read the token from stdin: {e}")))?;
    Ok(Zeroizing::new(text.trim().to_string()))
}

#[derive(Serialize)]
struct TokenJson<'a> {
    accessor: &'a str,
    policies: &'a [String],
    creation_time: String,
    expire_time: Option<String>,
    ttl: u64,
    renewable: bool,
    num_uses: u32,
    parent_accessor: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    period: Option<u64>,
}

fn print_token(info: &proto::TokenInfo, format: Format) -> Result<(), CliError> {
    let expire = (info.expire_unix != 0).then(|| format_unix(info.expire_unix));
    if format == Format::Json {
        return print_json(&TokenJson {
            accessor: &info.accessor,
            policies: &info.policies,
            creation_time: format_unix(info.created_unix),
            expire_time: expire,
            ttl: info.ttl_seconds,
            renewable: info.renewable,
            num_uses: info.num_uses,
            parent_accessor: &info.parent_accessor,
            period: (info.period_seconds > 0).then_some(info.period_seconds),
        });
    }
    let mut rows = vec![
        ("accessor", info.accessor.clone()),
        ("creation_time", format_unix(info.created_unix)),
        ("expire_time", expire.unwrap_or_else(|| "never".into())),
        ("ttl", format!("{}s", info.ttl_seconds)),
        ("renewable", info.renewable.to_string()),
        ("num_uses", info.num_uses.to_string()),
        ("policies", format!("[{}]", info.policies.join(" "))),
        ("parent_accessor", info.parent_accessor.clone()),
    ];
    if info.period_seconds > 0 {
        rows.push(("period", format!("{}s", info.period_seconds)));
    }
    print_table(&rows);
    Ok(())
}

/// Runs one `token` command.
pub async fn token(args: &ClientArgs, command: TokenCommand) -> Result<u8, CliError> {
    match command {
        TokenCommand::Create {
            policies,
            ttl,
            renewable,
            use_limit,
            orphan,
            period,
            format,
        } => {
            let request = proto::CreateTokenRequest {
                policies,
                ttl_seconds: seconds("ttl", ttl.as_deref())?,
                renewable: Some(renewable),
                num_uses: use_limit,
                orphan,
                period_seconds: seconds("period", period.as_deref())?,
            };
            let created = call!(args, TokenClient, create_token, request)?;
            let token = Zeroizing::new(created.token.clone());
            let info = created.info.clone().unwrap_or_default();
            if format == Format::Json {
                #[derive(Serialize)]
                struct Auth<'a> {
                    client_token: &'a str,
                    #[serde(flatten)]
                    info: TokenJson<'a>,
                }
                #[derive(Serialize)]
                struct Created<'a> {
                    auth: Auth<'a>,
                }
                let expire = (info.expire_unix != 0).then(|| format_unix(info.expire_unix));
                return print_json(&Created {
                    auth: Auth {
                        client_token: &token,
                        info: TokenJson {
                            accessor: &info.accessor,
                            policies: &info.policies,
                            creation_time: format_unix(info.created_unix),
                            expire_time: expire,
                            ttl: info.ttl_seconds,
                            renewable: info.renewable,
                            num_uses: info.num_uses,
                            parent_accessor: &info.parent_accessor,
                            period: (info.period_seconds > 0).then_some(info.period_seconds),
                        },
                    },
                })
                .map(|()| EXIT_OK);
            }
            print_table(&[("token", token.to_string())]);
            print_token(&info, Format::Table)?;
            Ok(EXIT_OK)
        }
        TokenCommand::Lookup {
            token,
            accessor,
            format,
        } => {
            let token = token_arg(token)?;
            let info = match (token.is_empty(), accessor) {
                (true, None) => call!(args, TokenClient, lookup_self, proto::LookupSelfRequest {})?,
                (_, accessor) => {
                    let request = proto::LookupTokenRequest {
                        token: token.to_string(),
                        accessor: accessor.unwrap_or_default(),
                    };
                    call!(args, TokenClient, lookup_token, request)?
                }
            };
            print_token(&info, format)?;
            Ok(EXIT_OK)
        }
        TokenCommand::Renew {
            token,
            increment,
            format,
        } => {
            let request = proto::RenewTokenRequest {
                token: token_arg(token)?.to_string(),
                increment_seconds: seconds("increment", increment.as_deref())?,
            };
            let info = call!(args, TokenClient, renew_token, request)?;
            print_token(&info, format)?;
            Ok(EXIT_OK)
        }
        TokenCommand::Revoke {
            token,
            accessor,
            self_: _,
        } => {
            let revoked = match accessor {
                Some(accessor) => {
                    let request = proto::RevokeAccessorRequest { accessor };
                    call!(args, TokenClient, revoke_accessor, request)?.revoked
                }
                None => {
                    // Empty (with --self): the caller's own token.
                    let request = proto::RevokeTokenRequest {
                        token: token_arg(token)?.to_string(),
                    };
                    call!(args, TokenClient, revoke_token, request)?.revoked
                }
            };
            outln!("Success! Revoked {revoked} token(s): the token and every token made from it.");
            Ok(EXIT_OK)
        }
        TokenCommand::ListAccessors { format } => list_accessors(args, format).await,
        TokenCommand::RevokeAccessor { accessor } => {
            let request = proto::RevokeAccessorRequest {
                accessor: accessor.clone(),
            };
            let revoked = call!(args, TokenClient, revoke_accessor, request)?.revoked;
            outln!(
                "Success! Revoked the token with accessor {accessor} ({revoked} token(s) with its children)."
            );
            Ok(EXIT_OK)
        }
    }
}

async fn list_accessors(args: &ClientArgs, format: Format) -> Result<u8, CliError> {
    let accessors = call!(
        args,
        TokenClient,
        list_accessors,
        proto::ListAccessorsRequest {}
    )?
    .accessors;
    if format == Format::Json {
        #[derive(Serialize)]
        struct AccessorJson<'a> {
            accessor: &'a str,
            policies: &'a [String],
            creation_time: String,
        }
        let list: Vec<AccessorJson<'_>> = accessors
            .iter()
            .map(|a| AccessorJson {
                accessor: &a.accessor,
                policies: &a.policies,
                creation_time: format_unix(a.created_unix),
            })
            .collect();
        return print_json(&list).map(|()| EXIT_OK);
    }
    outln!("{:24}    Created", "Accessor");
    outln!("{:24}    -------", "--------");
    for a in &accessors {
        outln!("{:24}    {}", a.accessor, format_unix(a.created_unix));
    }
    Ok(EXIT_OK)
}

/// `strongroom audit-hash`: the HMAC of stdin as audit lines write it.
pub async fn audit_hash(args: &ClientArgs) -> Result<u8, CliError> {
    let mut input = Zeroizing::new(Vec::new());
    std::io::stdin()
        .read_to_end(&mut input)
        .map_err(|e| CliError::Usage(format!("cannot read the value from stdin: {e}")))?;
    if input.ends_with(b"\n") {
        input.pop();
        if input.ends_with(b"\r") {
            input.pop();
        }
    }
    let request = proto::AuditHashRequest {
        input: input.to_vec(),
    };
    let hash = call!(args, SysClient, audit_hash, request)?.hash;
    outln!("{hash}");
    Ok(EXIT_OK)
}

/// Runs one `policy` command.
pub async fn policy(args: &ClientArgs, command: PolicyCommand) -> Result<u8, CliError> {
    match command {
        PolicyCommand::Write { name, file } => {
            let text = if file == "-" {
                let mut text = String::new();
                std::io::stdin().read_to_string(&mut text).map_err(|e| {
                    CliError::Usage(format!("cannot read the policy from stdin: {e}"))
                })?;
                text
            } else {
                std::fs::read_to_string(&file).map_err(|e| {
                    CliError::Usage(format!("cannot read the policy file {file}: {e}"))
                })?
            };
            let request = proto::PutPolicyRequest {
                name: name.clone(),
                policy: text,
            };
            call!(args, PolicyClient, put_policy, request)?;
            outln!("Success! Uploaded policy: {name}");
            Ok(EXIT_OK)
        }
        PolicyCommand::Read { name } => {
            let policy = call!(
                args,
                PolicyClient,
                get_policy,
                proto::GetPolicyRequest { name }
            )?
            .policy;
            out!("{policy}");
            if !policy.ends_with('\n') {
                outln!();
            }
            Ok(EXIT_OK)
        }
        PolicyCommand::List { format } => {
            let names = call!(
                args,
                PolicyClient,
                list_policies,
                proto::ListPoliciesRequest {}
            )?
            .names;
            if format == Format::Json {
                print_json(&names)?;
            } else {
                for name in names {
                    outln!("{name}");
                }
            }
            Ok(EXIT_OK)
        }
        PolicyCommand::Delete { name } => {
            call!(
                args,
                PolicyClient,
                delete_policy,
                proto::DeletePolicyRequest { name: name.clone() }
            )?;
            outln!("Success! Deleted policy: {name}");
            Ok(EXIT_OK)
        }
    }
}
