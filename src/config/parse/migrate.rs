//! The file of `strongroom operator migrate`, as Vault's: a
//! `storage_source` and a `storage_destination` block, each with the keys
//! of a daemon's `storage` block (read by the same code).

use hcl_edit::Span;
use hcl_edit::structure::Body;

use super::Ctx;
use crate::config::{MigrateConfig, StorageConfig};

const SOURCE: &str = "storage_source";
const DESTINATION: &str = "storage_destination";

impl Ctx<'_> {
    pub(super) fn migrate(&mut self, body: &Body) -> Option<MigrateConfig> {
        let (_, blocks) = self.section(body, "", &[], &[SOURCE, DESTINATION]);
        let mut source: Option<(StorageConfig, usize)> = None;
        let mut destination: Option<(StorageConfig, usize)> = None;
        for block in blocks {
            let ident = block.ident.as_str();
            let line = self.line(block.span());
            let slot = if ident == SOURCE {
                &mut source
            } else {
                &mut destination
            };
            if let Some((_, first)) = slot {
                self.only_one(line, ident, *first);
                continue;
            }
            let Some(kind) = self.single_label(block, line) else {
                continue;
            };
            if kind == "inmem" {
                self.error(
                    line,
                    ident,
                    "storage \"inmem\" holds nothing outside a running daemon; migrate moves a store between \"file\" and \"postgresql\"",
                );
                continue;
            }
            let Some(storage) = self.storage(block, kind, line) else {
                continue;
            };
            if let StorageConfig::Postgresql(pg) = &storage
                && pg.connection_url.is_none()
            {
                self.error(
                    line,
                    format!("{ident}.postgresql.connection_url"),
                    "is required in a migrate file (STRONGROOM_PG_CONNECTION_URL is not read here: with two storage blocks it could mean either)",
                );
                continue;
            }
            *slot = Some((storage, line));
        }
        for (slot, ident) in [(&source, SOURCE), (&destination, DESTINATION)] {
            if slot.is_none() && !self.has_error_for(ident) {
                self.error(
                    1,
                    ident,
                    format!(
                        "a {ident} block is required, such as {ident} \"file\" {{ path = \"/var/lib/strongroom\" }}"
                    ),
                );
            }
        }
        let ((source, source_line), (destination, line)) = (source?, destination?);
        if same_store(&source, &destination) {
            self.error(
                line,
                DESTINATION,
                format!(
                    "is the same store as {SOURCE} (line {source_line}); migrate copies into another, empty store"
                ),
            );
            return None;
        }
        Some(MigrateConfig {
            source,
            destination,
        })
    }
}

/// The same directory, or the same table at the same URL (a store named
/// two ways still meets the destination's emptiness check).
fn same_store(a: &StorageConfig, b: &StorageConfig) -> bool {
    match (a, b) {
        (StorageConfig::File { path: a, .. }, StorageConfig::File { path: b, .. }) => a == b,
        (StorageConfig::Postgresql(a), StorageConfig::Postgresql(b)) => {
            let place = |pg: &crate::config::PostgresConfig| {
                pg.connection_url
                    .as_ref()
                    .map(|u| (u.redacted(), pg.table.clone()))
            };
            place(a) == place(b)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::StorageConfig;
    use crate::config::parse::parse_migrate;

    fn errors(source: &str) -> Vec<String> {
        match parse_migrate(source, Path::new("m.hcl")) {
            Ok(_) => panic!("{source} parsed"),
            Err(e) => e.0.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn both_blocks_parse_as_storage_blocks() {
        let config = parse_migrate(
            "storage_source \"file\" {\n  path = \"/var/lib/strongroom\"\n}\nstorage_destination \"postgresql\" {\n  connection_url = \"postgres://sr:pw@db:5432/sr\"\n  table = \"moved\"\n}\n",
            Path::new("m.hcl"),
        )
        .unwrap();
        assert_eq!(config.source.kind(), "file");
        let StorageConfig::Postgresql(pg) = config.destination else {
            panic!("postgresql destination")
        };
        assert_eq!(pg.table, "moved");
    }

    #[test]
    fn missing_unknown_repeated_and_same_blocks_are_named() {
        assert_eq!(
            errors("storage_source \"file\" { path = \"/a\" }\n"),
            vec![
                "m.hcl:1: storage_destination: a storage_destination block is required, such as storage_destination \"file\" { path = \"/var/lib/strongroom\" }"
            ]
        );
        let errs = errors(
            "storage_source \"file\" { path = \"/a\" }\nstorage_destinaton \"file\" { path = \"/b\" }\n",
        );
        // The misspelt block, then (at line 1) the block it was meant to be.
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(
            errs[0].starts_with(
                "m.hcl:1: storage_destination: a storage_destination block is required"
            ),
            "{errs:?}"
        );
        assert!(
            errs[1].starts_with("m.hcl:2: storage_destinaton: unknown block \"storage_destinaton\" (did you mean \"storage_destination\"?)"),
            "{errs:?}"
        );
        assert_eq!(
            errors(
                "storage_source \"file\" { path = \"/a\" }\nstorage_destination \"file\" { path = \"/a\" }\n"
            ),
            vec![
                "m.hcl:2: storage_destination: is the same store as storage_source (line 1); migrate copies into another, empty store"
            ]
        );
        let errs = errors(
            "storage_source \"inmem\" {}\nstorage_destination \"postgresql\" { table = \"t\" }\n",
        );
        assert!(
            errs[0].starts_with("m.hcl:1: storage_source: storage \"inmem\" holds nothing"),
            "{errs:?}"
        );
        assert!(
            errs[1].starts_with("m.hcl:2: storage_destination.postgresql.connection_url: is required in a migrate file"),
            "{errs:?}"
        );
    }
}
