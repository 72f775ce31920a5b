//! The few DER (ITU-T X.690) reading steps that key and PKCS#12 parsing need: definite lengths
//! only, as DER requires; anything else is refused, never guessed.

/// One DER element: its tag, its contents and what follows it.
pub(crate) fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let (bytes, rest) = rest.split_at(count);
        let len = bytes
            .iter()
            .fold(0usize, |len, byte| (len << 8) | usize::from(*byte));
        (len, rest)
    };
    if rest.len() < len {
        return None;
    }
    let (contents, rest) = rest.split_at(len);
    Some((tag, contents, rest))
}

/// A reader over a sequence of DER elements (the contents of a SEQUENCE or SET).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Der<'a>(pub(crate) &'a [u8]);

impl<'a> Der<'a> {
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The next element's contents when it has `tag`.
    pub(crate) fn take(&mut self, tag: u8) -> Option<&'a [u8]> {
        let (found, contents, rest) = der_element(self.0)?;
        if found != tag {
            return None;
        }
        self.0 = rest;
        Some(contents)
    }

    /// The next element's contents when it has `tag`; `None` (and nothing read) otherwise.
    pub(crate) fn optional(&mut self, tag: u8) -> Option<&'a [u8]> {
        match der_element(self.0) {
            Some((found, _, _)) if found == tag => self.take(tag),
            _ => None,
        }
    }

    pub(crate) fn sequence(&mut self) -> Option<Der<'a>> {
        self.take(SEQUENCE).map(Der)
    }

    pub(crate) fn oid(&mut self) -> Option<&'a [u8]> {
        self.take(OID)
    }

    pub(crate) fn octets(&mut self) -> Option<&'a [u8]> {
        self.take(OCTET_STRING)
    }

    /// A non-negative INTEGER that fits in a `u32`.
    pub(crate) fn small_integer(&mut self) -> Option<u32> {
        let bytes = self.take(INTEGER)?;
        let bytes = match bytes {
            [0, rest @ ..] if !rest.is_empty() => rest,
            [first, ..] if first & 0x80 != 0 => return None,
            other => other,
        };
        if bytes.is_empty() || bytes.len() > 4 {
            return None;
        }
        Some(bytes.iter().fold(0u32, |n, b| (n << 8) | u32::from(*b)))
    }
}

pub(crate) const INTEGER: u8 = 0x02;
pub(crate) const OCTET_STRING: u8 = 0x04;
pub(crate) const OID: u8 = 0x06;
pub(crate) const SEQUENCE: u8 = 0x30;
pub(crate) const SET: u8 = 0x31;
/// `[0]`, constructed (EXPLICIT).
pub(crate) const CONTEXT_0: u8 = 0xa0;
/// `[0]`, primitive (IMPLICIT OCTET STRING).
pub(crate) const CONTEXT_0_PRIMITIVE: u8 = 0x80;
