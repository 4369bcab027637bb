//! Event payloads stamped with their send time, and the scan of an SSE stream for them.
//!
//! Payload: `t=<µs since epoch, 16 digits>;s=<sequence>;k=<topic index>;` padded with `x` to the
//! requested size. Sequence 0 is the warm-up event of each topic; measured events count from 1.

use memchr::memmem;

/// The event body for `seq` on topic `k`, stamped with `t_us`, exactly `size` bytes when
/// `size` is at least the stamp's length.
pub fn payload(t_us: u64, seq: u64, k: u32, size: usize) -> Vec<u8> {
    let mut b = format!("t={t_us:016};s={seq};k={k};").into_bytes();
    if b.len() < size {
        b.resize(size, b'x');
    }
    b
}

/// A stamp found in an SSE frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub t_us: u64,
    pub seq: u64,
    pub k: u32,
}

fn num(b: &[u8], key: &[u8]) -> Option<(u64, usize)> {
    if !b.starts_with(key) {
        return None;
    }
    let mut v: u64 = 0;
    let mut i = key.len();
    while i < b.len() && b[i].is_ascii_digit() {
        v = v.checked_mul(10)?.checked_add((b[i] - b'0') as u64)?;
        i += 1;
    }
    if i == key.len() || b.get(i) != Some(&b';') {
        return None;
    }
    Some((v, i + 1))
}

/// Parses a stamp at the start of `b`.
pub fn parse_stamp(b: &[u8]) -> Option<Stamp> {
    let (t_us, n1) = num(b, b"t=")?;
    let (seq, n2) = num(&b[n1..], b"s=")?;
    let (k, _) = num(&b[n1 + n2..], b"k=")?;
    Some(Stamp { t_us, seq, k: k as u32 })
}

/// What one SSE frame held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// A data line with a stamp.
    Event(Stamp),
    /// Anything else: the `connected` block, a comment (`: keepalive`, nchan's `: hi`), or a
    /// frame whose data is not ours.
    Other,
}

/// Splits a decoded SSE body into frames as bytes arrive and finds the stamps.
pub struct Scanner {
    pending: Vec<u8>,
    scanned: usize,
    finder: memmem::Finder<'static>,
}

impl Default for Scanner {
    fn default() -> Self {
        Self { pending: Vec::new(), scanned: 0, finder: memmem::Finder::new(b"\n\n") }
    }
}

impl Scanner {
    /// The buffer decoded bytes are appended to.
    pub fn buf(&mut self) -> &mut Vec<u8> {
        &mut self.pending
    }

    /// Calls `f` for every complete frame now in the buffer, then keeps the incomplete rest.
    pub fn frames(&mut self, mut f: impl FnMut(Frame)) {
        let mut start = 0;
        let mut from = self.scanned.saturating_sub(1);
        while let Some(i) = self.finder.find(&self.pending[from..]) {
            let end = from + i;
            f(classify(&self.pending[start..end]));
            start = end + 2;
            from = start;
        }
        if start > 0 {
            self.pending.drain(..start);
        }
        self.scanned = self.pending.len();
        if self.pending.capacity() > 64 * 1024 && self.pending.len() < 1024 {
            self.pending.shrink_to(4096);
        }
    }
}

fn classify(frame: &[u8]) -> Frame {
    match memmem::find(frame, b"data: t=").or_else(|| memmem::find(frame, b"data:t=")) {
        Some(i) => {
            let at = i + if frame[i + 5] == b' ' { 6 } else { 5 };
            match parse_stamp(&frame[at..]) {
                Some(s) => Frame::Event(s),
                None => Frame::Other,
            }
        }
        None => Frame::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_sizes_and_stamp() {
        let p = payload(1_763_790_000_123_456, 17, 3, 64);
        assert_eq!(p.len(), 64);
        assert_eq!(parse_stamp(&p), Some(Stamp { t_us: 1_763_790_000_123_456, seq: 17, k: 3 }));
        assert_eq!(payload(1, 1, 1, 4096).len(), 4096);
    }

    #[test]
    fn frames_across_reads() {
        let stream = b"retry: 3000\nevent: connected\ndata: {}\n\nid: e1\ndata: t=0000000000000005;s=1;k=0;xx\n\n: keepalive\n\nid: 2\ndata: t=0000000000000006;s=2;k=0;\n\n";
        for split in 0..stream.len() {
            let mut sc = Scanner::default();
            let mut got = Vec::new();
            sc.buf().extend_from_slice(&stream[..split]);
            sc.frames(|f| got.push(f));
            sc.buf().extend_from_slice(&stream[split..]);
            sc.frames(|f| got.push(f));
            let events: Vec<_> = got.iter().filter_map(|f| if let Frame::Event(s) = f { Some(s.seq) } else { None }).collect();
            assert_eq!(events, vec![1, 2], "split at {split}");
            assert_eq!(got.len(), 4);
        }
    }
}
