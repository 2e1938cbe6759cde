//! The registries.conf engine: parsing, drop-in merging and pull-source resolution exactly as
//! containers/image (`pkg/sysregistriesv2`) does them.
//!
//! Typical use:
//! ```no_run
//! use mirrorscope_core::registries::{load, ConfigLocation};
//! use mirrorscope_core::reference::ImageReference;
//! let cfg = load(&ConfigLocation::system(), Default::default()).unwrap();
//! let r = ImageReference::parse_docker("nginx:1.25.3").unwrap();
//! for s in cfg.pull_sources(&r).unwrap() { println!("{} blocked={}", s.reference, s.blocked()); }
//! ```

mod aliases;
mod canonical;
mod effective;
mod files;
mod model;
mod parse;
mod resolve;
mod shortnames;
mod toml;

pub use effective::EffectiveConfig;
pub use files::{list_drop_ins, load, read_config_file, ConfigError, ConfigLocation};
pub use model::{AliasValue, ConfigFile, Mirror, PullFromMirror, Registry, ShortNameMode};
pub use parse::{parse_config_bytes, parse_config_str, FileError, FileKind};
pub use resolve::{PullSource, ResolveError};
pub use shortnames::{ShortNameError, ShortNameResolution};
