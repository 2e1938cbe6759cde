//! The OpenShift version whose MCO is predicted, and what changes with it.

use crate::cimage_version::CImageVersion;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// An OpenShift `major.minor` version (the z-stream is ignored: the latest one is assumed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct OcpVersion {
    pub major: u32,
    pub minor: u32,
}

/// The three byte-exact encodings of MCO's registries.conf.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Family {
    /// OCP ≤ 4.12: ICSP only; `mirror-by-digest-only = true` on each mirrored source.
    Legacy,
    /// OCP 4.13 – 4.18: IDMS/ITMS, per-mirror `pull-from-mirror`.
    PullFromMirror,
    /// OCP ≥ 4.19: as 4.13 – 4.18 plus the `additional-layer-store-auth-helper = ""` line.
    Current,
}

impl OcpVersion {
    /// The default when no version is given: the current encoding (4.19 and later).
    pub const DEFAULT: OcpVersion = OcpVersion::new(4, 19);

    pub const fn new(major: u32, minor: u32) -> OcpVersion {
        OcpVersion { major, minor }
    }

    /// True when this version is `4.minor` or later.
    pub fn at_least(self, minor: u32) -> bool {
        self >= OcpVersion::new(4, minor)
    }

    /// The containers/image release this MCO vendors (for loading its temporary config).
    pub fn containers_image(self) -> CImageVersion {
        let minor = match self {
            v if !v.at_least(13) => 23, // 5.22 in MCO 4.12; 5.23 is the oldest the engine models
            v if !v.at_least(15) => 24,
            v if !v.at_least(16) => 27,
            v if !v.at_least(18) => 29,
            v if !v.at_least(19) => 29,
            v if !v.at_least(20) => 34,
            _ => 35,
        };
        CImageVersion::new(5, minor)
    }

    pub fn family(self) -> Family {
        if !self.at_least(13) {
            Family::Legacy
        } else if !self.at_least(19) {
            Family::PullFromMirror
        } else {
            Family::Current
        }
    }
}

impl Default for OcpVersion {
    fn default() -> Self {
        OcpVersion::DEFAULT
    }
}

impl fmt::Display for OcpVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// Why a version string was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid OpenShift version {0:?}: expected X.Y with X >= 4, for example 4.19")]
pub struct VersionError(pub String);

impl FromStr for OcpVersion {
    type Err = VersionError;

    /// Accepts `X.Y` (and `X.Y.Z`, ignoring Z).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || VersionError(s.to_string());
        let t = s.trim();
        let mut parts = t.split('.');
        let num = |p: Option<&str>| -> Result<u32, VersionError> {
            let p = p.ok_or_else(err)?;
            if p.is_empty() || p.len() > 6 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err());
            }
            p.parse().map_err(|_| err())
        };
        let major = num(parts.next())?;
        let minor = num(parts.next())?;
        if let Some(z) = parts.next() {
            num(Some(z))?;
        }
        if parts.next().is_some() || major < 4 {
            return Err(err());
        }
        Ok(OcpVersion { major, minor })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_classifies() {
        assert_eq!(
            "4.12".parse::<OcpVersion>().unwrap().family(),
            Family::Legacy
        );
        assert_eq!(
            "4.13".parse::<OcpVersion>().unwrap().family(),
            Family::PullFromMirror
        );
        assert_eq!(
            "4.18.7".parse::<OcpVersion>().unwrap().family(),
            Family::PullFromMirror
        );
        assert_eq!(
            "4.19".parse::<OcpVersion>().unwrap().family(),
            Family::Current
        );
        assert_eq!(
            "5.0".parse::<OcpVersion>().unwrap().family(),
            Family::Current
        );
        for bad in ["", "4", "3.11", "4.x", "4.19.1.2", "-4.1", "4.+1"] {
            assert!(bad.parse::<OcpVersion>().is_err(), "{bad}");
        }
    }
}
