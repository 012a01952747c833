//! A cheap pass over a protobuf body that enforces the count limits of repeated fields before
//! the full decode allocates anything.
//!
//! prost materialises every entry of a repeated message field, and an empty entry costs two
//! bytes on the wire but a whole struct in memory (a `SessionProto` is about 170 times its
//! encoding), so checking the limits after decoding lets a hostile record allocate far more
//! than its size. The pre-scan only reads field keys and lengths (`decode_key`, `skip_field`)
//! and allocates nothing that grows with the input; nested messages are visited only once the counts of their parent are
//! known to be within bounds.

use prost::encoding::{DecodeContext, WireType, decode_key, decode_varint, skip_field};

use super::PersistError;

/// A field of a message whose occurrences are limited.
#[derive(Debug)]
pub(super) struct Bound {
    /// The field's tag.
    pub(super) tag: u32,
    /// The name reported in [`PersistError::TooMany`].
    pub(super) field: &'static str,
    /// Most occurrences allowed (1 for a singular message field: prost would merge repeats).
    pub(super) max: usize,
    /// The limits inside each occurrence, for a message field.
    pub(super) nested: Option<&'static [Bound]>,
}

/// Checks `body` against `bounds`, then the nested bounds of each bounded message field.
pub(super) fn check(body: &[u8], bounds: &[Bound]) -> Result<(), PersistError> {
    // First pass: count (one counter per bound, whatever the input).
    let mut counts = vec![0usize; bounds.len()];
    each_field(body, |tag, wire_type, buf| {
        if let Some(count) = bounds
            .iter()
            .position(|bound| bound.tag == tag)
            .and_then(|index| counts.get_mut(index))
        {
            *count = count.saturating_add(1);
        }
        skip(tag, wire_type, buf)
    })?;
    for (bound, &got) in bounds.iter().zip(counts.iter()) {
        if got > bound.max {
            return Err(PersistError::TooMany {
                field: bound.field,
                max: bound.max,
                got,
            });
        }
    }
    // Second pass: within bounds, so visiting each nested message is bounded work too.
    if bounds.iter().all(|bound| bound.nested.is_none()) {
        return Ok(());
    }
    each_field(body, |tag, wire_type, buf| {
        let nested = bounds
            .iter()
            .find(|bound| bound.tag == tag)
            .and_then(|bound| bound.nested);
        match nested {
            Some(nested) => {
                if wire_type != WireType::LengthDelimited {
                    return Err(PersistError::Protobuf);
                }
                check(length_delimited(buf)?, nested)
            }
            None => skip(tag, wire_type, buf),
        }
    })
}

/// Calls `visit` with each field key; `visit` must consume the field's value from the buffer.
fn each_field(
    mut buf: &[u8],
    mut visit: impl FnMut(u32, WireType, &mut &[u8]) -> Result<(), PersistError>,
) -> Result<(), PersistError> {
    while !buf.is_empty() {
        let (tag, wire_type) = decode_key(&mut buf).map_err(|_| PersistError::Protobuf)?;
        visit(tag, wire_type, &mut buf)?;
    }
    Ok(())
}

fn skip(tag: u32, wire_type: WireType, buf: &mut &[u8]) -> Result<(), PersistError> {
    skip_field(wire_type, tag, buf, DecodeContext::default()).map_err(|_| PersistError::Protobuf)
}

/// Takes a length-delimited value off the front of `buf`.
fn length_delimited<'a>(buf: &mut &'a [u8]) -> Result<&'a [u8], PersistError> {
    let len = decode_varint(buf).map_err(|_| PersistError::Protobuf)?;
    let len = usize::try_from(len).map_err(|_| PersistError::Protobuf)?;
    if len > buf.len() {
        return Err(PersistError::Protobuf);
    }
    let (value, rest) = buf.split_at(len);
    *buf = rest;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    const INNER: &[Bound] = &[Bound {
        tag: 1,
        field: "inner",
        max: 2,
        nested: None,
    }];
    const OUTER: &[Bound] = &[Bound {
        tag: 2,
        field: "outer",
        max: 3,
        nested: Some(INNER),
    }];

    #[test]
    fn counts_skips_and_descends() {
        // Unknown fields of every wire type are skipped; two outer entries, each within bounds.
        let ok = [
            0x08, 0x96, 0x01, // 1: varint
            0x12, 0x04, 0x08, 0x01, 0x08, 0x02, // 2: {1: 1, 1: 2}
            0x1D, 0, 0, 0, 0, // 3: fixed32
            0x12, 0x00, // 2: {}
        ];
        assert_eq!(check(&ok, OUTER), Ok(()));
        let too_many_outer = [0x12, 0x00].repeat(4);
        assert_eq!(
            check(&too_many_outer, OUTER),
            Err(PersistError::TooMany {
                field: "outer",
                max: 3,
                got: 4
            })
        );
        let too_many_inner = [0x12, 0x06, 0x08, 0x01, 0x08, 0x02, 0x08, 0x03];
        assert_eq!(
            check(&too_many_inner, OUTER),
            Err(PersistError::TooMany {
                field: "inner",
                max: 2,
                got: 3
            })
        );
        for bad in [&[0x12, 0x05, 0x00][..], &[0x10, 0x01], &[0x80], &[0x12]] {
            assert_eq!(check(bad, OUTER), Err(PersistError::Protobuf), "{bad:?}");
        }
    }
}
