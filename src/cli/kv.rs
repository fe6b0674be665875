//! `strongroom kv …`: versioned secrets, in the shape of `vault kv`.

use std::collections::BTreeMap;

use clap::Subcommand;
use serde::Serialize;
use zeroize::Zeroizing;

use super::client::{ClientArgs, call};
use super::output::{print_json, print_table};
use super::{CliError, EXIT_OK, Format};
use crate::proto::{self, kv_client::KvClient};
use crate::time::format_unix;

#[derive(Subcommand)]
pub enum KvCommand {
    /// Write a new version: `kv put app/db user=admin password=@pw.txt`.
    Put {
        /// Write only if the current version is N (0: only if there is none).
        #[arg(long, value_name = "N")]
        cas: Option<u64>,
        /// Secret path.
        path: String,
        /// Fields as NAME=VALUE, or NAME=@FILE to read the value from a file.
        #[arg(required = true, value_name = "NAME=VALUE")]
        fields: Vec<String>,
    },
    /// Read a version (the current one by default).
    // `--version` here is the secret's, as in `vault kv get -version=N`.
    #[command(disable_version_flag = true)]
    Get {
        /// The version to read; 0: the current one.
        #[arg(long, default_value_t = 0)]
        version: u64,
        /// Secret path.
        path: String,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Soft-delete versions (the current one by default); `undelete` restores them.
    Delete {
        /// Versions, comma-separated.
        #[arg(long, value_delimiter = ',')]
        versions: Vec<u64>,
        /// Secret path.
        path: String,
    },
    /// Restore soft-deleted versions.
    Undelete {
        /// Versions, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        versions: Vec<u64>,
        /// Secret path.
        path: String,
    },
    /// Remove versions' data for good.
    Destroy {
        /// Versions, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        versions: Vec<u64>,
        /// Secret path.
        path: String,
    },
    /// List the names under a folder.
    List {
        /// Folder, such as `app/`; the top when left out.
        #[arg(default_value = "")]
        prefix: String,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Show or remove a path's metadata (every version).
    #[command(subcommand)]
    Metadata(MetadataCommand),
}

#[derive(Subcommand)]
pub enum MetadataCommand {
    /// Show a path's versions and their state.
    Get {
        /// Secret path.
        path: String,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Remove a path: every version and its metadata.
    Delete {
        /// Secret path.
        path: String,
    },
}

/// Runs one `kv` command.
pub async fn run(args: &ClientArgs, command: KvCommand) -> Result<u8, CliError> {
    match command {
        KvCommand::Put { cas, path, fields } => put(args, path, fields, cas).await,
        KvCommand::Get {
            version,
            path,
            format,
        } => get(args, path, version, format).await,
        KvCommand::Delete { versions, path } => {
            call!(
                args,
                KvClient,
                delete,
                proto::DeleteRequest {
                    path: path.clone(),
                    versions
                }
            )?;
            println!("Success! Data deleted (soft) at: {path}");
            Ok(EXIT_OK)
        }
        KvCommand::Undelete { versions, path } => {
            call!(
                args,
                KvClient,
                undelete,
                proto::UndeleteRequest {
                    path: path.clone(),
                    versions
                }
            )?;
            println!("Success! Data restored at: {path}");
            Ok(EXIT_OK)
        }
        KvCommand::Destroy { versions, path } => {
            call!(
                args,
                KvClient,
                destroy,
                proto::DestroyRequest {
                    path: path.clone(),
                    versions
                }
            )?;
            println!("Success! Data destroyed at: {path}");
            Ok(EXIT_OK)
        }
        KvCommand::List { prefix, format } => {
            let keys = call!(args, KvClient, list, proto::ListRequest { prefix })?.keys;
            if format == Format::Json {
                print_json(&keys)?;
            } else {
                println!("Keys\n----");
                for key in keys {
                    println!("{key}");
                }
            }
            Ok(EXIT_OK)
        }
        KvCommand::Metadata(MetadataCommand::Get { path, format }) => {
            let meta = call!(args, KvClient, metadata, proto::MetadataRequest { path })?;
            print_metadata(&meta, format)?;
            Ok(EXIT_OK)
        }
        KvCommand::Metadata(MetadataCommand::Delete { path }) => {
            call!(
                args,
                KvClient,
                delete_metadata,
                proto::DeleteMetadataRequest { path: path.clone() }
            )?;
            println!("Success! Data and metadata deleted at: {path}");
            Ok(EXIT_OK)
        }
    }
}

async fn put(
    args: &ClientArgs,
    path: String,
    fields: Vec<String>,
    cas: Option<u64>,
) -> Result<u8, CliError> {
    let mut data = std::collections::HashMap::new();
    for field in fields {
        let field = Zeroizing::new(field);
        let Some((name, value)) = field.split_once('=') else {
            // The field may be a value typed without its name: not repeated.
            return Err(CliError::Usage(
                "each field must be NAME=VALUE (or NAME=@FILE)".into(),
            ));
        };
        let value = match value.strip_prefix('@') {
            Some(file) => std::fs::read_to_string(file).map_err(|e| {
                CliError::Usage(format!("cannot read the value of {name} from {file}: {e}"))
            })?,
            None => value.to_string(),
        };
        data.insert(name.to_string(), value);
    }
    let request = proto::PutRequest {
        path: path.clone(),
        data,
        cas,
    };
    let version = call!(args, KvClient, put, request)?.version;
    println!("Success! Data written to: {path} (version {version})");
    Ok(EXIT_OK)
}

async fn get(
    args: &ClientArgs,
    path: String,
    version: u64,
    format: Format,
) -> Result<u8, CliError> {
    let response = call!(args, KvClient, get, proto::GetRequest { path, version })?;
    let data: BTreeMap<String, Zeroizing<String>> = response
        .data
        .iter()
        .map(|(k, v)| (k.clone(), Zeroizing::new(v.clone())))
        .collect();
    if format == Format::Json {
        #[derive(Serialize)]
        struct Metadata {
            version: u64,
            created_time: String,
        }
        #[derive(Serialize)]
        struct Secret<'a> {
            data: BTreeMap<&'a str, &'a str>,
            metadata: Metadata,
        }
        print_json(&Secret {
            data: data.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect(),
            metadata: Metadata {
                version: response.version,
                created_time: format_unix(response.created_unix),
            },
        })?;
    } else {
        println!(
            "version {} (written {})\n",
            response.version,
            format_unix(response.created_unix)
        );
        let rows: Vec<(&str, String)> = data
            .iter()
            .map(|(k, v)| (k.as_str(), v.to_string()))
            .collect();
        print_table(&rows);
    }
    Ok(EXIT_OK)
}

fn print_metadata(meta: &proto::MetadataResponse, format: Format) -> Result<(), CliError> {
    let time = |t: u64| {
        if t == 0 {
            String::new()
        } else {
            format_unix(t)
        }
    };
    if format == Format::Json {
        #[derive(Serialize)]
        struct Version {
            created_time: String,
            deletion_time: String,
            destroyed: bool,
        }
        #[derive(Serialize)]
        struct Metadata {
            current_version: u64,
            oldest_version: u64,
            created_time: String,
            updated_time: String,
            max_versions: u32,
            versions: BTreeMap<String, Version>,
        }
        return print_json(&Metadata {
            current_version: meta.current_version,
            oldest_version: meta.oldest_version,
            created_time: time(meta.created_unix),
            updated_time: time(meta.updated_unix),
            max_versions: meta.max_versions,
            versions: meta
                .versions
                .iter()
                .map(|v| {
                    (
                        v.version.to_string(),
                        Version {
                            created_time: time(v.created_unix),
                            deletion_time: time(v.deleted_unix),
                            destroyed: v.destroyed,
                        },
                    )
                })
                .collect(),
        });
    }
    print_table(&[
        ("current_version", meta.current_version.to_string()),
        ("oldest_version", meta.oldest_version.to_string()),
        ("created_time", time(meta.created_unix)),
        ("updated_time", time(meta.updated_unix)),
        ("max_versions", meta.max_versions.to_string()),
    ]);
    println!("\nVersion    Created                 Deleted                 Destroyed");
    for v in &meta.versions {
        println!(
            "{:<10} {:<23} {:<23} {}",
            v.version,
            time(v.created_unix),
            time(v.deleted_unix),
            v.destroyed
        );
    }
    Ok(())
}
