//! The OpenShift version whose MCO is predicted, and what changes with it.

use crate::cimage_version::CImageVersion;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// An OpenShift `major.minor[.patch]` version. Without a patch level the latest z-stream of
/// that minor is assumed; the patch level only matters where a z-stream changed MCO's behaviour
/// (4.13.0 – 4.13.26 refused ICSP next to IDMS/ITMS).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OcpVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: Option<u32>,
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
        OcpVersion {
            major,
            minor,
            patch: None,
        }
    }

    /// MCO 4.13.0 – 4.13.26 (runtime-utils before the Nov-2023 backport, MCO #4027) refused to
    /// render an ImageContentSourcePolicy next to an ImageDigestMirrorSet or ImageTagMirrorSet.
    pub fn refuses_icsp_with_mirror_sets(self) -> bool {
        self.major == 4 && self.minor == 13 && self.patch.is_some_and(|z| z < 27)
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

impl TryFrom<String> for OcpVersion {
    type Error = VersionError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<OcpVersion> for String {
    fn from(v: OcpVersion) -> String {
        v.to_string()
    }
}

impl fmt::Display for OcpVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)?;
        if let Some(z) = self.patch {
            write!(f, ".{z}")?;
        }
        Ok(())
    }
}

/// Why a version string was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid OpenShift version {0:?}: expected X.Y or X.Y.Z with X >= 4, for example 4.19")]
pub struct VersionError(pub String);

impl FromStr for OcpVersion {
    type Err = VersionError;

    /// Accepts `X.Y` and `X.Y.Z`.
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
        let patch = match parts.next() {
            Some(z) => Some(num(Some(z))?),
            None => None,
        };
        if parts.next().is_some() || major < 4 {
            return Err(err());
        }
        Ok(OcpVersion {
            major,
            minor,
            patch,
        })
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
        let v: OcpVersion = "4.13.26".parse().unwrap();
        assert!(v.refuses_icsp_with_mirror_sets() && v.to_string() == "4.13.26");
        assert!(!"4.13.27"
            .parse::<OcpVersion>()
            .unwrap()
            .refuses_icsp_with_mirror_sets());
        assert!(!"4.13"
            .parse::<OcpVersion>()
            .unwrap()
            .refuses_icsp_with_mirror_sets());
        assert!("4.13.5".parse::<OcpVersion>().unwrap().at_least(13));
        for bad in ["", "4", "3.11", "4.x", "4.19.1.2", "-4.1", "4.+1"] {
            assert!(bad.parse::<OcpVersion>().is_err(), "{bad}");
        }
    }
}
