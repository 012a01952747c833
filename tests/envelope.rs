//! Envelope: round trips of every kind, canonical bytes, strict rejection of malformed input,
//! unknown kinds surfaced, local features.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use proptest::prelude::*;
use spots_signal::envelope::{
    ActionIntent, DoorRef, Envelope, EnvelopeError, KnotContext, MAX_ENVELOPE_BYTES, MAX_TAGS,
    MAX_TEXT_BYTES, RetryReceipt, SenderKeyRequest, extract_local_features,
};
use uuid::Uuid;

fn samples() -> Vec<Envelope> {
    vec![
        Envelope::Text("hello 👋".into()),
        Envelope::Text(String::new()),
        Envelope::DoorRef(DoorRef {
            spot_id: Some("spot-123".into()),
            list_id: None,
            event_id: Some("evt:9".into()),
            community_id: None,
            door_type: "spot".into(),
        }),
        Envelope::ActionIntent(ActionIntent {
            action_type: "save_spot".into(),
            parameters: vec![
                ("list".into(), "weekend".into()),
                ("spot".into(), "42".into()),
            ],
        }),
        Envelope::KnotContext(KnotContext {
            knot_cluster_id: Some("k1".into()),
            vibe_tags: vec!["coffee".into(), "quiet".into(), "coffee".into()],
        }),
        Envelope::SenderKeyRequest(SenderKeyRequest {
            community_id: Uuid::from_u128(1),
            key_id: Uuid::from_u128(2),
            chain_id: Some(77),
            requested_at_ms: 1_700_000_000_000,
        }),
        Envelope::RetryReceipt(RetryReceipt {
            original_sent_at_ms: 5,
            community_id: Some(Uuid::from_u128(3)),
            key_id: None,
            chain_id: None,
            iteration: Some(4),
        }),
    ]
}

#[test]
fn every_kind_round_trips_canonically() {
    for envelope in samples() {
        let bytes = envelope.encode().unwrap();
        let decoded = Envelope::decode(&bytes).unwrap();
        assert_eq!(decoded, envelope);
        assert_eq!(*decoded.encode().unwrap(), *bytes, "{envelope:?}");
    }
    // Pinned bytes of one envelope: version 1, kind "text_v1", body {1: "hi"}.
    assert_eq!(
        hex::encode(&*Envelope::Text("hi".into()).encode().unwrap()),
        "08011207746578745f76311a040a026869"
    );
}

#[test]
fn malformed_inputs_are_refused() {
    let good = Envelope::Text("hi".into()).encode().unwrap().to_vec();
    // Unknown trailing field (tag 9) in the frame.
    let mut unknown = good.clone();
    unknown.extend_from_slice(&[0x48, 0x01]);
    assert_eq!(Envelope::decode(&unknown), Err(EnvelopeError::NonCanonical));
    // A repeated version field.
    let mut repeated = vec![0x08, 0x01];
    repeated.extend_from_slice(&good);
    assert_eq!(
        Envelope::decode(&repeated),
        Err(EnvelopeError::NonCanonical)
    );
    // Non-minimal varint for the version.
    let mut padded = vec![0x08, 0x81, 0x00];
    padded.extend_from_slice(&good[2..]);
    assert_eq!(Envelope::decode(&padded), Err(EnvelopeError::NonCanonical));
    // Version 2.
    let mut v2 = good.clone();
    v2[1] = 2;
    assert_eq!(
        Envelope::decode(&v2),
        Err(EnvelopeError::UnsupportedVersion(2))
    );
    // Garbage, empty, oversize.
    assert_eq!(
        Envelope::decode(&[0xff, 0xff]),
        Err(EnvelopeError::Protobuf)
    );
    assert_eq!(
        Envelope::decode(&[]),
        Err(EnvelopeError::MissingField("version"))
    );
    assert_eq!(
        Envelope::decode(&vec![0; MAX_ENVELOPE_BYTES + 1]),
        Err(EnvelopeError::TooLarge(MAX_ENVELOPE_BYTES + 1))
    );
    // Field rules.
    let too_long = Envelope::Text("x".repeat(MAX_TEXT_BYTES + 1));
    assert_eq!(
        too_long.encode().unwrap_err(),
        EnvelopeError::InvalidField("text")
    );
    let bad_door = Envelope::DoorRef(DoorRef {
        door_type: "Spot!".into(),
        ..DoorRef::default()
    });
    assert_eq!(
        bad_door.encode().unwrap_err(),
        EnvelopeError::InvalidField("door_type")
    );
    let unsorted = Envelope::ActionIntent(ActionIntent {
        action_type: "a".into(),
        parameters: vec![("b".into(), String::new()), ("a".into(), String::new())],
    });
    assert_eq!(unsorted.encode().unwrap_err(), EnvelopeError::NonCanonical);
    let duplicate = Envelope::ActionIntent(ActionIntent {
        action_type: "a".into(),
        parameters: vec![("a".into(), String::new()), ("a".into(), String::new())],
    });
    assert_eq!(duplicate.encode().unwrap_err(), EnvelopeError::NonCanonical);
    let many_tags = Envelope::KnotContext(KnotContext {
        knot_cluster_id: None,
        vibe_tags: vec!["t".into(); MAX_TAGS + 1],
    });
    assert_eq!(
        many_tags.encode().unwrap_err(),
        EnvelopeError::TooMany("vibe_tags")
    );
    let control_id = Envelope::DoorRef(DoorRef {
        spot_id: Some("a\nb".into()),
        door_type: "spot".into(),
        ..DoorRef::default()
    });
    assert_eq!(
        control_id.encode().unwrap_err(),
        EnvelopeError::InvalidField("spot_id")
    );
    // A bad kind name is refused; a well-formed unknown one is surfaced.
    let frame = |kind: &str| {
        let mut out = vec![0x08, 0x01, 0x12, u8::try_from(kind.len()).unwrap()];
        out.extend_from_slice(kind.as_bytes());
        out.extend_from_slice(&[0x1a, 0x00]);
        out
    };
    assert_eq!(
        Envelope::decode(&frame("Bad Kind")),
        Err(EnvelopeError::InvalidField("kind"))
    );
    let unknown = Envelope::decode(&frame("poll_v1")).unwrap();
    assert_eq!(
        unknown,
        Envelope::Unsupported {
            kind: "poll_v1".into()
        }
    );
    assert_eq!(unknown.kind(), "poll_v1");
    // A known kind with a missing required field.
    assert_eq!(
        Envelope::decode(&frame("door_ref_v1")),
        Err(EnvelopeError::MissingField("door_type"))
    );
    // A request whose key id is not 16 bytes.
    let mut request = frame("sender_key_request_v1");
    request.truncate(request.len() - 2);
    request.extend_from_slice(&[0x1a, 0x04, 0x0a, 0x02, 0x01, 0x02]);
    assert_eq!(
        Envelope::decode(&request),
        Err(EnvelopeError::InvalidField("community_id"))
    );
}

#[test]
fn local_features() {
    let features = samples()
        .iter()
        .map(extract_local_features)
        .collect::<Vec<_>>();
    assert_eq!(features[0].door_type, None);
    assert!(!features[0].has_action);
    assert_eq!(features[2].door_type.as_deref(), Some("spot"));
    assert!(features[3].has_action);
    assert_eq!(
        features[4].tags,
        vec!["coffee".to_owned(), "quiet".to_owned()]
    );
    assert_eq!(extract_local_features(&samples()[5]), Default::default());
    // Debug never shows content.
    assert!(!format!("{:?}", samples()[0]).contains("hello"));
}

fn name() -> impl Strategy<Value = String> {
    "[a-z0-9_]{1,16}"
}

fn envelope() -> impl Strategy<Value = Envelope> {
    prop_oneof![
        ".{0,64}".prop_map(Envelope::Text),
        (prop::option::of("[a-zA-Z0-9:-]{1,20}"), name()).prop_map(|(spot_id, door_type)| {
            Envelope::DoorRef(DoorRef {
                spot_id,
                door_type,
                ..DoorRef::default()
            })
        }),
        (name(), prop::collection::btree_map(name(), ".{0,20}", 0..5)).prop_map(
            |(action_type, parameters)| Envelope::ActionIntent(ActionIntent {
                action_type,
                parameters: parameters.into_iter().collect(),
            })
        ),
        prop::collection::vec(name(), 0..5).prop_map(|vibe_tags| {
            Envelope::KnotContext(KnotContext {
                knot_cluster_id: None,
                vibe_tags,
            })
        }),
    ]
}

proptest! {
    #[test]
    fn arbitrary_envelopes_round_trip(envelope in envelope()) {
        let bytes = envelope.encode().unwrap();
        prop_assert_eq!(Envelope::decode(&bytes).unwrap(), envelope);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(envelope) = Envelope::decode(&bytes) {
            // Whatever decodes (other than an unknown kind) re-encodes to the same bytes.
            if !matches!(envelope, Envelope::Unsupported { .. }) {
                prop_assert_eq!(&*envelope.encode().unwrap(), &bytes);
            }
        }
    }
}
