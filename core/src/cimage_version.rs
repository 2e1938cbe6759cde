//! Which containers/image release's behaviour to reproduce.
//!
//! Texts and a few rules changed between releases (containers/image `pkg/sysregistriesv2` and `docker/`, release by release). CRI-O on current
//! OpenShift uses the newest; Debian's skopeo (our test oracle) links 5.23.1.

use std::fmt;
use std::str::FromStr;

/// A containers/image version, compared by (major, minor).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CImageVersion {
    pub major: u32,
    pub minor: u32,
}

impl CImageVersion {
    /// Debian bookworm's skopeo 1.9.3 build.
    pub const V5_23: Self = Self::new(5, 23);
    /// Strict v1/v2 mixing check and `manifest unknown` simplification.
    pub const V5_24: Self = Self::new(5, 24);
    /// BurntSushi/toml v1.3: a leading byte-order mark is skipped.
    pub const V5_26: Self = Self::new(5, 26);
    /// Alias errors joined with newlines.
    pub const V5_31: Self = Self::new(5, 31);
    /// A drop-in that vanished between listing and reading is skipped.
    pub const V5_34: Self = Self::new(5, 34);
    /// Mirror `location` trailing slashes really trimmed.
    pub const V5_35: Self = Self::new(5, 35);
    /// The newest behaviour we model (go.podman.io/image/v5 5.39).
    pub const LATEST: Self = Self::new(5, 39);

    pub const fn new(major: u32, minor: u32) -> Self {
        Self { major, minor }
    }

    pub fn at_least(self, other: Self) -> bool {
        self >= other
    }
}

impl Default for CImageVersion {
    fn default() -> Self {
        Self::LATEST
    }
}

impl fmt::Display for CImageVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// Error for a version string that is not `MAJOR.MINOR[.PATCH]` with major 5.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid containers/image version {0:?}: expected 5.MINOR[.PATCH] (e.g. 5.23 or 5.39.2) or \"latest\"")]
pub struct ParseVersionError(pub String);

impl FromStr for CImageVersion {
    type Err = ParseVersionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "latest" {
            return Ok(Self::LATEST);
        }
        let err = || ParseVersionError(s.to_string());
        let trimmed = s.strip_prefix('v').unwrap_or(s);
        let mut parts = trimmed.split('.');
        let major: u32 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(err)?;
        let minor: u32 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(err)?;
        if let Some(patch) = parts.next() {
            patch.parse::<u32>().map_err(|_| err())?;
        }
        if parts.next().is_some() || major != 5 {
            return Err(err());
        }
        Ok(Self::new(major, minor))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_orders() {
        assert_eq!("5.23.1".parse::<CImageVersion>(), Ok(CImageVersion::V5_23));
        assert_eq!("v5.35".parse::<CImageVersion>(), Ok(CImageVersion::V5_35));
        assert_eq!("latest".parse::<CImageVersion>(), Ok(CImageVersion::LATEST));
        assert!(CImageVersion::V5_23 < CImageVersion::V5_24);
        assert!("4.1".parse::<CImageVersion>().is_err());
        assert!("5".parse::<CImageVersion>().is_err());
        assert!("5.x".parse::<CImageVersion>().is_err());
        assert!("5.1.2.3".parse::<CImageVersion>().is_err());
    }
}
