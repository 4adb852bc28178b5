//! A write cursor: the fields of a frame are appended in wire order.

/// Appends fields to a buffer one after another.
///
/// Bytes past the end of the buffer are dropped: every encoder checks the frame length
/// first, so this only keeps the encoders free of panicking paths.
pub(crate) struct Writer<'a> {
    buf: &'a mut [u8],
    at: usize,
}

impl<'a> Writer<'a> {
    /// A cursor at `buf[0]`.
    pub(crate) fn new(buf: &'a mut [u8]) -> Self {
        Writer { buf, at: 0 }
    }

    /// Bytes written (or skipped) so far.
    pub(crate) fn position(&self) -> usize {
        self.at
    }

    // One out-of-line copy of the bounds check serves every field of every frame.
    #[inline(never)]
    pub(crate) fn bytes(&mut self, b: &[u8]) {
        if let Some(dst) = self.buf.get_mut(self.at..self.at + b.len()) {
            dst.copy_from_slice(b);
        }
        self.at += b.len();
    }

    /// Leaves `n` bytes as they are.
    pub(crate) fn skip(&mut self, n: usize) {
        self.at += n;
    }

    // The typed writes stay calls: a call per field is smaller than an inlined copy.
    #[inline(never)]
    pub(crate) fn u8(&mut self, v: u8) {
        self.bytes(&[v]);
    }

    #[inline(never)]
    pub(crate) fn le16(&mut self, v: u16) {
        self.bytes(&v.to_le_bytes());
    }

    #[inline(never)]
    pub(crate) fn le32(&mut self, v: u32) {
        self.bytes(&v.to_le_bytes());
    }

    #[inline(never)]
    pub(crate) fn le64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }

    #[inline(never)]
    pub(crate) fn be16(&mut self, v: u16) {
        self.bytes(&v.to_be_bytes());
    }

    #[inline(never)]
    pub(crate) fn be32(&mut self, v: u32) {
        self.bytes(&v.to_be_bytes());
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn appends_in_order_and_drops_what_does_not_fit() {
        let mut b = [0u8; 7];
        let mut w = Writer::new(&mut b);
        w.u8(1);
        w.le16(0x0302);
        w.skip(1);
        w.be16(0x0506);
        w.le32(0xAABB_CCDD); // past the end: dropped
        assert_eq!(w.position(), 10);
        assert_eq!(b, [1, 2, 3, 0, 5, 6, 0]);
    }
}
