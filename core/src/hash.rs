//! Content hashes in the `sha256:<hex>` form used across reports.

use sha2::{Digest, Sha256};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// `sha256:<lowercase hex>` of some bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let mut h = Sha256Writer::default();
    h.0.update(bytes);
    h.finish()
}

/// Hashes what is written to it, for content too large to hold whole.
#[derive(Default)]
pub struct Sha256Writer(Sha256);

impl std::io::Write for Sha256Writer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Sha256Writer {
    /// `sha256:<lowercase hex>` of everything written.
    pub fn finish(self) -> String {
        let d = self.0.finalize();
        let mut s = String::with_capacity(71);
        s.push_str("sha256:");
        for b in d.iter() {
            s.push(char::from(HEX[usize::from(b >> 4)]));
            s.push(char::from(HEX[usize::from(b & 15)]));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn empty_input() {
        assert_eq!(
            super::sha256_hex(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
