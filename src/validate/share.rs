//! Community shares without keys: [`share`] applies the community module's row check
//! ([`crate::community::share::validate_share`]: `encryption_type = signal_protocol`, a known
//! `share_kind`, a Signal message of type 2 or 3 that parses, at most 16 KiB) and then the same
//! strict framing rules as a DM ([`super::signal_message`]), so a share is exactly a Signal
//! message a SPOTS device produced: no plaintext key material, no other payload.

use super::{ValidateError, signal_message};
use crate::community::share::{ShareError, ShareKind, validate_share};

/// Checks one share row's columns; returns its kind.
pub fn share(
    encryption_type: &str,
    share_kind: &str,
    message_type: u8,
    body: &[u8],
) -> Result<ShareKind, ValidateError> {
    let kind =
        validate_share(encryption_type, share_kind, message_type, body).map_err(|e| match e {
            ShareError::NotSignalMessage(t) => ValidateError::NotSignalMessage(t),
            ShareError::Body(decode) => ValidateError::Malformed(decode),
            ShareError::NotSignalProtocol => ValidateError::Share("encryption_type"),
            ShareError::UnknownKind => ValidateError::Share("share_kind"),
            ShareError::TooLarge => ValidateError::TooLarge {
                what: "share",
                got: body.len(),
                max: crate::community::share::MAX_SHARE_BODY_BYTES,
            },
            _ => ValidateError::Share("row"),
        })?;
    signal_message(message_type, body)?;
    Ok(kind)
}
