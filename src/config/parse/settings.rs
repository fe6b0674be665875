//! The `storage`, `audit`, `kv` and `barrier` blocks.

use hcl_edit::structure::Block;

use super::values::{as_duration, as_u64};
use super::words::qualified;
use super::{Ctx, Section};
use crate::config::{
    AuditDevice, BarrierConfig, DEFAULT_STORAGE_CACHE_SIZE, FileUse, KvSettings, MAX_KV_VERSIONS,
    MAX_ROTATION_ENCRYPTIONS, MIN_ROTATION_INTERVAL, StorageConfig,
};

/// The smallest `cache_size` accepted: below it redb rereads its own tree.
const MIN_STORAGE_CACHE_SIZE: usize = 1024 * 1024;

impl Ctx<'_> {
    pub(super) fn storage(
        &mut self,
        block: &Block,
        kind: &str,
        line: usize,
    ) -> Option<StorageConfig> {
        let name = format!("storage.{kind}");
        match kind {
            "file" => {
                let (section, _) = self.section(&block.body, &name, &["path", "cache_size"], &[]);
                let cache_size = self.cache_size(&section);
                let Some((path, path_line)) = self.string(&section, "path") else {
                    if !section.attrs.contains_key("path") {
                        self.error(
                            line,
                            format!("{name}.path"),
                            "is required: the directory that holds the data",
                        );
                    }
                    return None;
                };
                if path.is_empty() {
                    self.error(path_line, format!("{name}.path"), "must not be empty");
                    return None;
                }
                let path = self.absolute(&path, path_line, &name)?;
                Some(StorageConfig::File {
                    path,
                    cache_size: cache_size?,
                })
            }
            "inmem" => {
                self.section(&block.body, &name, &[], &[]);
                Some(StorageConfig::Inmem)
            }
            "postgresql" => self.postgresql(block, line).map(StorageConfig::Postgresql),
            other => {
                self.error(
                    line,
                    "storage",
                    format!(
                        "unknown storage type {other:?} (strongroom has \"file\", \"postgresql\" and \"inmem\")"
                    ),
                );
                None
            }
        }
    }

    /// `cache_size` of `storage "file"`: bytes of page cache, at least 1 MiB.
    fn cache_size(&mut self, section: &Section<'_>) -> Option<usize> {
        let Some((size, at)) = self.value(section, "cache_size", as_u64) else {
            // Absent: the default; present but not a number: already an error.
            return (!section.attrs.contains_key("cache_size"))
                .then_some(DEFAULT_STORAGE_CACHE_SIZE);
        };
        match usize::try_from(size) {
            Ok(size) if size >= MIN_STORAGE_CACHE_SIZE => Some(size),
            _ => {
                self.error(
                    at,
                    qualified(&section.name, "cache_size"),
                    format!("must be a number of bytes of at least {MIN_STORAGE_CACHE_SIZE} (1 MiB), got {size}"),
                );
                None
            }
        }
    }

    /// `audit "file" { path = "…" }` or `audit "stdout" {}`.
    pub(super) fn audit(&mut self, block: &Block, kind: &str, line: usize) -> Option<AuditDevice> {
        let name = format!("audit.{kind}");
        match kind {
            "file" => {
                let (section, _) = self.section(&block.body, &name, &["path"], &[]);
                match self.string(&section, "path") {
                    Some((path, at)) => {
                        let key = qualified(&name, "path");
                        let path = self.absolute(&path, at, &key)?;
                        self.named_file(&path, at, &key, FileUse::Append);
                        Some(AuditDevice::File { path })
                    }
                    None => {
                        if !section.attrs.contains_key("path") {
                            self.error(
                                line,
                                qualified(&name, "path"),
                                "is required: the file to append audit lines to",
                            );
                        }
                        None
                    }
                }
            }
            "stdout" => {
                self.section(&block.body, &name, &[], &[]);
                Some(AuditDevice::Stdout)
            }
            other => {
                self.error(
                    line,
                    "audit",
                    format!(
                        "unknown audit device {other:?} (strongroom has \"file\" and \"stdout\")"
                    ),
                );
                None
            }
        }
    }

    /// `kv { max_versions = N  max_value_size = BYTES }`.
    pub(super) fn kv(&mut self, block: &Block, line: usize) -> Option<KvSettings> {
        let name = "kv";
        if !block.labels.is_empty() {
            self.error(line, name, "the kv block takes no label: kv { … }");
            return None;
        }
        let (section, _) =
            self.section(&block.body, name, &["max_versions", "max_value_size"], &[]);
        let mut settings = KvSettings::default();
        if let Some((max, at)) = self.value(&section, "max_versions", as_u64) {
            match u32::try_from(max) {
                Ok(max) if (1..=MAX_KV_VERSIONS).contains(&max) => settings.max_versions = max,
                _ => self.error(
                    at,
                    qualified(name, "max_versions"),
                    format!("must be between 1 and {MAX_KV_VERSIONS}, got {max}"),
                ),
            }
        }
        if let Some((size, at)) = self.value(&section, "max_value_size", as_u64) {
            match usize::try_from(size) {
                Ok(size) if size >= 1 => settings.max_value_size = size,
                _ => self.error(
                    at,
                    qualified(name, "max_value_size"),
                    format!("must be a number of bytes of at least 1, got {size}"),
                ),
            }
        }
        Some(settings)
    }

    /// `barrier { rotation_max_encryptions = N  rotation_interval = "…" }`.
    pub(super) fn barrier(&mut self, block: &Block, line: usize) -> Option<BarrierConfig> {
        let name = "barrier";
        if !block.labels.is_empty() {
            self.error(
                line,
                name,
                "the barrier block takes no label: barrier { … }",
            );
            return None;
        }
        let (section, _) = self.section(
            &block.body,
            name,
            &["rotation_max_encryptions", "rotation_interval"],
            &[],
        );
        let mut config = BarrierConfig {
            line,
            ..BarrierConfig::default()
        };
        if let Some((max, at)) = self.value(&section, "rotation_max_encryptions", as_u64) {
            if (1..=MAX_ROTATION_ENCRYPTIONS).contains(&max) {
                config.rotation_max_encryptions = max;
            } else {
                self.error(
                    at,
                    qualified(name, "rotation_max_encryptions"),
                    format!(
                        "must be between 1 and {MAX_ROTATION_ENCRYPTIONS} (AES-GCM with random nonces is safe for about 2^32 encryptions per key), got {max}"
                    ),
                );
            }
        }
        if let Some((interval, at)) = self.value(&section, "rotation_interval", as_duration) {
            if interval.is_zero() {
                config.rotation_interval = None;
            } else if interval < MIN_ROTATION_INTERVAL {
                self.error(
                    at,
                    qualified(name, "rotation_interval"),
                    "must be \"0\" (off) or at least 24h, as in Vault",
                );
            } else {
                config.rotation_interval = Some(interval);
            }
        }
        Some(config)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::super::{MINIMAL, errors, parse};
    use crate::config::{MAX_ROTATION_ENCRYPTIONS, StorageConfig};

    #[test]
    fn the_barrier_block_sets_the_rotation_policy() {
        let config = parse(
            &format!(
                "{MINIMAL}barrier {{\n  rotation_max_encryptions = 1000000\n  rotation_interval = \"720h\"\n}}\n"
            ),
            Path::new("test.hcl"),
        )
        .unwrap();
        assert_eq!(config.barrier.rotation_max_encryptions, 1_000_000);
        assert_eq!(
            config.barrier.rotation_interval,
            Some(Duration::from_secs(720 * 3600))
        );
        let defaults = parse(MINIMAL, Path::new("test.hcl")).unwrap().barrier;
        assert_eq!(defaults.rotation_max_encryptions, MAX_ROTATION_ENCRYPTIONS);
        assert_eq!(defaults.rotation_interval, None);

        let errs = errors(&format!(
            "{MINIMAL}barrier {{\n  rotation_max_encryptions = 5000000000\n  rotation_interval = \"1h\"\n  rotate = 1\n}}\n"
        ));
        assert!(
            errs[0].contains(
                "test.hcl:4: barrier.rotation_max_encryptions: must be between 1 and 3865470566"
            ),
            "{errs:?}"
        );
        assert!(
            errs[1].contains(
                "test.hcl:5: barrier.rotation_interval: must be \"0\" (off) or at least 24h"
            ),
            "{errs:?}"
        );
        assert!(
            errs[2].contains("test.hcl:6: barrier.rotate: unknown key"),
            "{errs:?}"
        );
        let errs = errors(&format!("{MINIMAL}barrier \"x\" {{}}\n"));
        assert!(
            errs[0].contains("the barrier block takes no label"),
            "{errs:?}"
        );
    }

    #[test]
    fn relative_storage_path_becomes_absolute() {
        let config = parse(
            "storage \"file\" { path = \"data\" }\nlistener \"tcp\" {}\n",
            Path::new("t.hcl"),
        )
        .unwrap();
        let StorageConfig::File { path, cache_size } = config.storage.value else {
            panic!()
        };
        assert!(path.is_absolute());
        assert_eq!(path, std::env::current_dir().unwrap().join("data"));
        assert_eq!(cache_size, 32 * 1024 * 1024);
    }

    #[test]
    fn the_file_storage_cache_size_is_set_and_bounded() {
        let config = parse(
            "storage \"file\" {\n  path = \"/d\"\n  cache_size = 8388608\n}\nlistener \"tcp\" {}\n",
            Path::new("t.hcl"),
        )
        .unwrap();
        assert_eq!(
            config.storage.value,
            StorageConfig::File {
                path: "/d".into(),
                cache_size: 8 * 1024 * 1024
            }
        );
        let errs = errors(
            "storage \"file\" {\n  path = \"/d\"\n  cache_size = 1000\n}\nlistener \"tcp\" {}\n",
        );
        assert_eq!(
            errs,
            vec![
                "test.hcl:3: storage.file.cache_size: must be a number of bytes of at least 1048576 (1 MiB), got 1000"
            ]
        );
    }
}
