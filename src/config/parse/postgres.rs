//! `storage "postgresql" { connection_url, table, ha_enabled, ha_table,
//! ha_lease_ttl, max_parallel, skip_create_table }`, with Vault's key names
//! (`ha_lease_ttl` is strongroom's: Vault's lease is a fixed 15 s).

use hcl_edit::structure::Block;

use super::values::{as_duration, as_u64};
use super::words::qualified;
use super::{Ctx, Section};
use crate::config::{
    ConnectionUrl, DEFAULT_PG_HA_LEASE_TTL, DEFAULT_PG_HA_TABLE, DEFAULT_PG_MAX_PARALLEL,
    DEFAULT_PG_TABLE, FileUse, MAX_PG_MAX_PARALLEL, PG_HA_LEASE_TTL_RANGE, PostgresConfig, Source,
};

const NAME: &str = "storage.postgresql";
const KEYS: [&str; 7] = [
    "connection_url",
    "table",
    "ha_enabled",
    "ha_table",
    "ha_lease_ttl",
    "max_parallel",
    "skip_create_table",
];
/// PostgreSQL's longest identifier (63) less the longest suffix strongroom
/// adds to a table's name (`_epoch`, `_meta`), so no name is cut short.
const MAX_IDENTIFIER: usize = 57;

/// PostgreSQL's reserved key words (the SQL:2016 list PostgreSQL reserves,
/// docs "SQL Key Words", column "PostgreSQL: reserved").
const RESERVED: &[&str] = &[
    "all",
    "analyse",
    "analyze",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "asymmetric",
    "both",
    "case",
    "cast",
    "check",
    "collate",
    "column",
    "constraint",
    "create",
    "current_catalog",
    "current_date",
    "current_role",
    "current_time",
    "current_timestamp",
    "current_user",
    "default",
    "deferrable",
    "desc",
    "distinct",
    "do",
    "else",
    "end",
    "except",
    "false",
    "fetch",
    "for",
    "foreign",
    "from",
    "grant",
    "group",
    "having",
    "in",
    "initially",
    "intersect",
    "into",
    "lateral",
    "leading",
    "limit",
    "localtime",
    "localtimestamp",
    "not",
    "null",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "placing",
    "primary",
    "references",
    "returning",
    "select",
    "session_user",
    "some",
    "symmetric",
    "system_user",
    "table",
    "then",
    "to",
    "trailing",
    "true",
    "union",
    "unique",
    "user",
    "using",
    "variadic",
    "when",
    "where",
    "window",
    "with",
];

impl Ctx<'_> {
    pub(super) fn postgresql(&mut self, block: &Block, line: usize) -> Option<PostgresConfig> {
        let (section, _) = self.section(&block.body, NAME, &KEYS, &[]);
        let mut url_source = Source::Default;
        let connection_url = match self.string(&section, "connection_url") {
            Some((url, at)) => match ConnectionUrl::parse(&url) {
                Ok(url) => {
                    // Checked before start, as every file the config names.
                    if let Some(root) = &url.ssl_root_cert {
                        let key = qualified(NAME, "connection_url");
                        if let Some(root) = self.absolute(&root.to_string_lossy(), at, &key) {
                            self.named_file(&root, at, &key, FileUse::Read);
                        }
                    }
                    url_source = Source::File { line: at };
                    Some(url)
                }
                Err(message) => {
                    self.error(at, qualified(NAME, "connection_url"), message);
                    None
                }
            },
            // Absent: STRONGROOM_PG_CONNECTION_URL must give it (checked
            // with the environment); not a string: already an error.
            None => None,
        };
        let ha_enabled = self
            .boolean(&section, "ha_enabled")
            .is_some_and(|(on, _)| on);
        let ha_lease_ttl = self.ha_lease_ttl(&section);
        let table = self.table_name(&section, "table", DEFAULT_PG_TABLE);
        let ha_table = self.table_name(&section, "ha_table", DEFAULT_PG_HA_TABLE);
        let max_parallel = self.max_parallel(&section);
        let skip_create_table = self
            .boolean(&section, "skip_create_table")
            .is_some_and(|(skip, _)| skip);
        if self.has_error_for(NAME) {
            return None;
        }
        Some(PostgresConfig {
            connection_url,
            url_source,
            line,
            table: table?,
            ha_enabled,
            ha_table: ha_table?,
            ha_lease_ttl: ha_lease_ttl?,
            max_parallel: max_parallel?,
            skip_create_table,
        })
    }

    /// A table name: letters, digits and `_`, optionally after `schema.`,
    /// so it can be quoted into SQL as it is.
    fn table_name(&mut self, section: &Section<'_>, key: &str, default: &str) -> Option<String> {
        let Some((name, at)) = self.string(section, key) else {
            return (!section.attrs.contains_key(key)).then(|| default.to_string());
        };
        // Names go into SQL unquoted: a reserved word would not parse.
        let reserved = |part: &str| RESERVED.contains(&part.to_ascii_lowercase().as_str());
        let part_ok = |part: &str| {
            !part.is_empty()
                && !reserved(part)
                && part.len() <= MAX_IDENTIFIER
                && !part.starts_with(|c: char| c.is_ascii_digit())
                && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        };
        let parts: Vec<&str> = name.split('.').collect();
        if parts.len() <= 2 && parts.iter().all(|p| part_ok(p)) {
            Some(name)
        } else {
            self.error(
                at,
                qualified(NAME, key),
                format!("must be a table name of letters, digits and _ (at most {MAX_IDENTIFIER}, not a reserved word such as user or order), optionally after a schema and a dot; got {}", crate::text::quote(&name)),
            );
            None
        }
    }

    fn ha_lease_ttl(&mut self, section: &Section<'_>) -> Option<std::time::Duration> {
        let Some((ttl, at)) = self.value(section, "ha_lease_ttl", as_duration) else {
            return (!section.attrs.contains_key("ha_lease_ttl"))
                .then_some(DEFAULT_PG_HA_LEASE_TTL);
        };
        if PG_HA_LEASE_TTL_RANGE.contains(&ttl) {
            return Some(ttl);
        }
        self.error(
            at,
            qualified(NAME, "ha_lease_ttl"),
            format!(
                "must be from {}s to {}s (docs/HA.md, Timeouts); got {} ms",
                PG_HA_LEASE_TTL_RANGE.start().as_secs(),
                PG_HA_LEASE_TTL_RANGE.end().as_secs(),
                ttl.as_millis()
            ),
        );
        None
    }

    fn max_parallel(&mut self, section: &Section<'_>) -> Option<usize> {
        let Some((n, at)) = self.value(section, "max_parallel", as_u64) else {
            return (!section.attrs.contains_key("max_parallel"))
                .then_some(DEFAULT_PG_MAX_PARALLEL);
        };
        match usize::try_from(n) {
            Ok(n) if (1..=MAX_PG_MAX_PARALLEL).contains(&n) => Some(n),
            _ => {
                self.error(
                    at,
                    qualified(NAME, "max_parallel"),
                    format!(
                        "must be a number of connections from 1 to {MAX_PG_MAX_PARALLEL}, got {n}"
                    ),
                );
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::{StorageConfig, parse};

    fn errors(source: &str) -> Vec<String> {
        match parse(source, Path::new("t.hcl")) {
            Ok(_) => Vec::new(),
            Err(e) => e.0.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn defaults_apply() {
        let config = parse(
            "storage \"postgresql\" {\n  connection_url = \"postgres://a:pw@127.0.0.1:5432/s\"\n}\nlistener \"tcp\" {}\n",
            Path::new("t.hcl"),
        )
        .unwrap();
        let StorageConfig::Postgresql(pg) = config.storage.value else {
            panic!("postgresql")
        };
        assert_eq!(pg.table, "strongroom_kv_store");
        assert_eq!(pg.ha_table, "strongroom_ha_locks");
        assert_eq!(pg.max_parallel, 8);
        assert!(!pg.skip_create_table);
        assert!(!pg.ha_enabled);
        assert_eq!(pg.ha_lease_ttl, std::time::Duration::from_secs(5));
        assert!(pg.connection_url.is_some());
    }

    #[test]
    fn ha_settings_read_as_vaults_strings_or_booleans() {
        let config = parse(
            "storage \"postgresql\" {\n  connection_url = \"postgres://db/s\"\n  ha_enabled = \"true\"\n  ha_lease_ttl = \"2s\"\n}\nlistener \"tcp\" {}\n",
            Path::new("t.hcl"),
        )
        .unwrap();
        let StorageConfig::Postgresql(pg) = config.storage.value else {
            panic!("postgresql")
        };
        assert!(pg.ha_enabled);
        assert_eq!(pg.ha_lease_ttl, std::time::Duration::from_secs(2));
    }

    #[test]
    fn bad_values_name_file_line_and_key() {
        let errs = errors(
            "storage \"postgresql\" {\n  connection_url = \"mysql://x\"\n  table = \"a;drop\"\n  max_parallel = 0\n  ha_lease_ttl = \"500ms\"\n  colour = 1\n}\nlistener \"tcp\" {}\n",
        );
        assert_eq!(errs.len(), 5, "{errs:?}");
        assert!(
            errs[0].starts_with("t.hcl:2: storage.postgresql.connection_url"),
            "{errs:?}"
        );
        assert!(
            errs[1].starts_with("t.hcl:3: storage.postgresql.table"),
            "{errs:?}"
        );
        assert!(
            errs[2].starts_with("t.hcl:4: storage.postgresql.max_parallel"),
            "{errs:?}"
        );
        assert!(
            errs[3].starts_with("t.hcl:5: storage.postgresql.ha_lease_ttl: must be from 1s to 60s"),
            "{errs:?}"
        );
        assert!(
            errs[4].starts_with("t.hcl:6: storage.postgresql.colour"),
            "{errs:?}"
        );
    }

    #[test]
    fn table_names_that_would_not_parse_or_would_be_cut_are_refused() {
        let long = "t".repeat(58);
        for name in ["user", "public.Order", long.as_str()] {
            let errs = errors(&format!(
                "storage \"postgresql\" {{\n  connection_url = \"postgres://db/s\"\n  table = \"{name}\"\n}}\nlistener \"tcp\" {{}}\n"
            ));
            assert_eq!(errs.len(), 1, "{name}: {errs:?}");
            assert!(errs[0].contains("reserved word"), "{errs:?}");
        }
        let fits = "t".repeat(57);
        let config = parse(
            &format!(
                "storage \"postgresql\" {{\n  connection_url = \"postgres://db/s\"\n  table = \"{fits}\"\n}}\nlistener \"tcp\" {{}}\n"
            ),
            Path::new("t.hcl"),
        );
        assert!(config.is_ok());
    }

    #[test]
    fn sslrootcert_is_a_file_checked_before_start() {
        let config = parse(
            "storage \"postgresql\" {\n  connection_url = \"postgres://db/s?sslmode=verify-full&sslrootcert=/etc/pg-ca.pem\"\n}\nlistener \"tcp\" {}\n",
            Path::new("t.hcl"),
        )
        .unwrap();
        assert_eq!(config.files.len(), 1);
        assert_eq!(config.files[0].path, Path::new("/etc/pg-ca.pem"));
        assert_eq!(config.files[0].line, 2);
    }

    #[test]
    fn ha_enabled_false_is_accepted() {
        assert!(errors("storage \"postgresql\" {\n  ha_enabled = false\n  skip_create_table = true\n  table = \"s.kv\"\n}\nlistener \"tcp\" {}\n").is_empty());
    }
}
