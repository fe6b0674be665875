//! `strongroom kv …`: versioned secrets, in the shape of `vault kv`.

use std::collections::{BTreeMap, HashMap};
use std::io::IsTerminal;

use clap::Subcommand;
use serde::Serialize;
use serde_json::Value;
use zeroize::Zeroizing;

use super::client::{ClientArgs, call};
use super::input::read_fields;
use super::output::{out, outln, print_json, print_table};
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
        /// Fields as NAME=VALUE (a string), NAME:=JSON (any JSON value, such
        /// as port:=5432 or tags:='["a","b"]'), NAME=@FILE (the value from a
        /// file), @FILE.json (every field from a JSON object) or - (a JSON
        /// object on stdin).
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
        /// Print only this field's value (no newline when piped), as
        /// `vault kv get -field=NAME`.
        #[arg(long, value_name = "NAME")]
        field: Option<String>,
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
            field,
            format,
        } => get(args, path, version, field, format).await,
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
            outln!("Success! Data deleted (soft) at: {path}");
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
            outln!("Success! Data restored at: {path}");
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
            outln!("Success! Data destroyed at: {path}");
            Ok(EXIT_OK)
        }
        KvCommand::List { prefix, format } => {
            let keys = call!(args, KvClient, list, proto::ListRequest { prefix })?.keys;
            if format == Format::Json {
                print_json(&keys)?;
            } else {
                outln!("Keys\n----");
                for key in keys {
                    outln!("{key}");
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
            outln!("Success! Data and metadata deleted at: {path}");
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
    let (typed, plain): (Vec<String>, Vec<String>) = fields.into_iter().partition(|f| is_typed(f));
    let mut object = read_fields(plain)?;
    for field in typed {
        let field = Zeroizing::new(field);
        let Some((name, json)) = field.split_once(":=") else {
            continue;
        };
        let value: Value = serde_json::from_str(json).map_err(|e| {
            CliError::Usage(format!(
                "the value of {} (NAME:=JSON) is not valid JSON (line {}, column {})",
                super::input::quoted(name),
                e.line(),
                e.column()
            ))
        })?;
        object.insert(name.to_string(), value);
    }
    // Only strings: the string map, which daemons from before JSON values
    // read too; any other value: the JSON document.
    let strings: Option<HashMap<String, String>> = object
        .iter()
        .map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
        .collect();
    let request = match strings {
        Some(data) => proto::PutRequest {
            path: path.clone(),
            data,
            cas,
            data_json: String::new(),
        },
        None => proto::PutRequest {
            path: path.clone(),
            data: Default::default(),
            cas,
            data_json: Value::Object(object).to_string(),
        },
    };
    let version = call!(args, KvClient, put, request)?.version;
    outln!("Success! Data written to: {path} (version {version})");
    Ok(EXIT_OK)
}

/// A field given as NAME:=JSON: its name (before the first `=`) ends in `:`.
fn is_typed(field: &str) -> bool {
    !field.starts_with('@')
        && field
            .split_once('=')
            .is_some_and(|(name, _)| name.len() > 1 && name.ends_with(':'))
}

/// A value as `kv get` prints it: a string as is, anything else as JSON.
fn shown(value: &Value) -> Zeroizing<String> {
    Zeroizing::new(match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

async fn get(
    args: &ClientArgs,
    path: String,
    version: u64,
    field: Option<String>,
    format: Format,
) -> Result<u8, CliError> {
    let request = proto::GetRequest {
        path: path.clone(),
        version,
    };
    let response = call!(args, KvClient, get, request)?;
    let text = Zeroizing::new(response.data_json.clone());
    let data: serde_json::Map<String, Value> = if text.is_empty() {
        // A daemon from before JSON values: strings only.
        response
            .data
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect()
    } else {
        serde_json::from_str(&text).map_err(|_| {
            CliError::Failed(format!(
                "the daemon's answer for kv path {path:?} is not a JSON object"
            ))
        })?
    };
    if let Some(field) = field {
        let Some(value) = data.get(&field) else {
            return Err(CliError::Failed(format!(
                "the secret at kv path {path:?} has no field {field:?}"
            )));
        };
        if format == Format::Json {
            print_json(value)?;
        } else if std::io::stdout().is_terminal() {
            outln!("{}", shown(value).as_str());
        } else {
            // Piped: the value exactly, as Vault prints it, for `$(…)`.
            out!("{}", shown(value).as_str());
        }
    } else if format == Format::Json {
        print_json(&envelope::Secret::new(&data, &response))?;
    } else {
        outln!(
            "version {} (written {})\n",
            response.version,
            format_unix(response.created_unix)
        );
        let rows: Vec<(&str, String)> = data
            .iter()
            .map(|(k, v)| (k.as_str(), shown(v).to_string()))
            .collect();
        print_table(&rows);
    }
    Ok(EXIT_OK)
}

/// `vault kv get -format=json`'s answer: Vault's response envelope around
/// KV v2's `data` and `metadata`, so `jq .data.data.password` works.
mod envelope {
    use std::collections::BTreeMap;

    use serde::Serialize;
    use serde_json::{Map, Value};

    use crate::proto;
    use crate::time::format_unix;

    #[derive(Serialize)]
    pub struct Secret<'a> {
        request_id: String,
        lease_id: &'static str,
        lease_duration: u64,
        renewable: bool,
        data: Data<'a>,
        warnings: Option<Vec<String>>,
    }

    #[derive(Serialize)]
    struct Data<'a> {
        data: &'a Map<String, Value>,
        metadata: Metadata,
    }

    #[derive(Serialize)]
    struct Metadata {
        created_time: String,
        custom_metadata: Option<BTreeMap<String, String>>,
        deletion_time: &'static str,
        destroyed: bool,
        version: u64,
    }

    impl<'a> Secret<'a> {
        pub fn new(data: &'a Map<String, Value>, response: &proto::GetResponse) -> Self {
            Self {
                // Vault's id of the request; strongroom's CLI makes one per call.
                request_id: crate::secret::random_uuid(),
                lease_id: "",
                lease_duration: 0,
                renewable: false,
                data: Data {
                    data,
                    // A version that is read is neither deleted nor destroyed.
                    metadata: Metadata {
                        created_time: format_unix(response.created_unix),
                        custom_metadata: None,
                        deletion_time: "",
                        destroyed: false,
                        version: response.version,
                    },
                },
                warnings: None,
            }
        }
    }
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
            cas_required: bool,
            custom_metadata: Option<BTreeMap<String, String>>,
            versions: BTreeMap<String, Version>,
        }
        return print_json(&Metadata {
            current_version: meta.current_version,
            oldest_version: meta.oldest_version,
            created_time: time(meta.created_unix),
            updated_time: time(meta.updated_unix),
            max_versions: meta.max_versions,
            cas_required: meta.cas_required,
            custom_metadata: (!meta.custom_metadata.is_empty()).then(|| {
                meta.custom_metadata
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            }),
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
    let custom: BTreeMap<String, &String> = meta
        .custom_metadata
        .iter()
        .map(|(k, v)| (format!("custom_metadata.{k}"), v))
        .collect();
    let mut rows = vec![
        ("current_version", meta.current_version.to_string()),
        ("oldest_version", meta.oldest_version.to_string()),
        ("created_time", time(meta.created_unix)),
        ("updated_time", time(meta.updated_unix)),
        ("max_versions", meta.max_versions.to_string()),
        ("cas_required", meta.cas_required.to_string()),
    ];
    rows.extend(custom.iter().map(|(k, v)| (k.as_str(), (*v).clone())));
    print_table(&rows);
    outln!("\nVersion    Created                 Deleted                 Destroyed");
    for v in &meta.versions {
        outln!(
            "{:<10} {:<23} {:<23} {}",
            v.version,
            time(v.created_unix),
            time(v.deleted_unix),
            v.destroyed
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_name_colon_equals_is_a_typed_field() {
        assert!(is_typed("port:=5432"));
        assert!(is_typed("tags:=[\"a\"]"));
        assert!(!is_typed("url=http://h:=x"), "the first = decides");
        assert!(!is_typed("user=admin"));
        assert!(!is_typed(":=1"), "a name is needed");
        assert!(!is_typed("@fields.json"));
        assert!(!is_typed("-"));
        assert_eq!(shown(&serde_json::json!("x")).as_str(), "x");
        assert_eq!(
            shown(&serde_json::json!({"a": [1]})).as_str(),
            "{\"a\":[1]}"
        );
    }
}
