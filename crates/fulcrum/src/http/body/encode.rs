//! A response body's compressor: frames in, compressed frames out, flushed
//! whenever the body pauses so a stream (server-sent events, a chunked answer
//! written bit by bit) reaches the client as it is written, never held whole.
//! Levels are the route's, by default Caddy's: gzip 5, zstd 3; brotli at quality
//! 4, a fast streaming setting (Caddy ships no brotli encoder).

use std::io::Write;

use bytes::Bytes;
use fulcrum_core::shape::encoding::{Coding, Compression};

/// brotli's window: 2^18 bytes, so memory per stream stays small.
const BROTLI_WINDOW: u32 = 18;

enum Inner {
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Br(Box<brotli::CompressorWriter<Vec<u8>>>),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
}

/// One body's compressor.
pub struct Encoder {
    inner: Option<Inner>,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Encoder")
    }
}

impl Encoder {
    /// A compressor for `c` (its level checked with the config).
    pub fn new(c: Compression) -> std::io::Result<Self> {
        let level = u32::try_from(c.level).unwrap_or(0);
        let inner = match c.coding {
            Coding::Gzip => Inner::Gzip(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::new(level),
            )),
            Coding::Br => Inner::Br(Box::new(brotli::CompressorWriter::new(
                Vec::new(),
                4096,
                level,
                BROTLI_WINDOW,
            ))),
            Coding::Zstd => Inner::Zstd(zstd::stream::write::Encoder::new(Vec::new(), c.level)?),
        };
        Ok(Self { inner: Some(inner) })
    }

    fn out(&mut self) -> Vec<u8> {
        match &mut self.inner {
            Some(Inner::Gzip(e)) => std::mem::take(e.get_mut()),
            Some(Inner::Br(e)) => std::mem::take(e.get_mut()),
            Some(Inner::Zstd(e)) => std::mem::take(e.get_mut()),
            None => Vec::new(),
        }
    }

    /// Compresses `data`; returns what the compressor let out so far (often nothing).
    pub fn write(&mut self, data: &[u8]) -> std::io::Result<Bytes> {
        match &mut self.inner {
            Some(Inner::Gzip(e)) => e.write_all(data)?,
            Some(Inner::Br(e)) => e.write_all(data)?,
            Some(Inner::Zstd(e)) => e.write_all(data)?,
            None => {}
        }
        Ok(Bytes::from(self.out()))
    }

    /// Everything written so far, decodable now (a sync flush).
    pub fn flush(&mut self) -> std::io::Result<Bytes> {
        match &mut self.inner {
            Some(Inner::Gzip(e)) => e.flush()?,
            Some(Inner::Br(e)) => e.flush()?,
            Some(Inner::Zstd(e)) => e.flush()?,
            None => {}
        }
        Ok(Bytes::from(self.out()))
    }

    /// The end of the compressed stream; nothing after it.
    pub fn finish(&mut self) -> std::io::Result<Bytes> {
        let out = match self.inner.take() {
            Some(Inner::Gzip(e)) => e.finish()?,
            // Taking the writer apart writes the stream's last block.
            Some(Inner::Br(e)) => e.into_inner(),
            Some(Inner::Zstd(e)) => e.finish()?,
            None => Vec::new(),
        };
        Ok(Bytes::from(out))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn roundtrip(coding: Coding, pieces: &[&[u8]]) -> Vec<u8> {
        let c = Compression {
            coding,
            level: coding.default_level(),
        };
        let mut enc = Encoder::new(c).unwrap_or_else(|e| panic!("{e}"));
        let mut out = Vec::new();
        for p in pieces {
            out.extend_from_slice(&enc.write(p).unwrap_or_default());
            out.extend_from_slice(&enc.flush().unwrap_or_default());
        }
        out.extend_from_slice(&enc.finish().unwrap_or_default());
        let mut plain = Vec::new();
        match coding {
            Coding::Gzip => {
                let _ = flate2::read::GzDecoder::new(&out[..]).read_to_end(&mut plain);
            }
            Coding::Br => {
                let _ = brotli::Decompressor::new(&out[..], 4096).read_to_end(&mut plain);
            }
            Coding::Zstd => {
                plain = zstd::stream::decode_all(&out[..]).unwrap_or_default();
            }
        }
        plain
    }

    #[test]
    fn every_coding_round_trips_across_flushes() {
        let pieces: &[&[u8]] = &[b"data: one\n\n", b"", b"data: two\n\n", &[b'x'; 70_000]];
        let whole: Vec<u8> = pieces.concat();
        for c in [Coding::Gzip, Coding::Br, Coding::Zstd] {
            assert_eq!(roundtrip(c, pieces), whole, "{c:?}");
        }
    }

    #[test]
    fn a_flush_lets_out_what_was_written() {
        for c in [Coding::Gzip, Coding::Br, Coding::Zstd] {
            let level = c.default_level();
            let mut enc =
                Encoder::new(Compression { coding: c, level }).unwrap_or_else(|e| panic!("{e}"));
            let _ = enc.write(b"event: tick\n\n");
            let flushed = enc.flush().unwrap_or_default();
            assert!(!flushed.is_empty(), "{c:?}");
        }
    }
}
