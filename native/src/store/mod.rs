//! [`SqliteStore`]: the on-device [`ProtocolStore`], one SQLite file per device with every
//! value sealed under the app's store key.
//!
//! Layout (schema version 1; kinds 11 sender key and 12 community need no schema change):
//!
//! ```sql
//! meta    (name TEXT PRIMARY KEY, value BLOB)            -- 'salt' (random, clear), 'key_check'
//! records (kind INTEGER, key BLOB, value BLOB,           -- key = HMAC(row subkey, kind || logical key)
//!          PRIMARY KEY (kind, key)) WITHOUT ROWID        -- value = AEAD(record encoding), see crypto
//! PRAGMA application_id = 0x53505453 ('SPTS'), user_version = schema version
//! ```
//!
//! - Every [`ProtocolStore::commit`] is one SQLite transaction (a savepoint inside an operation
//!   transaction, see [`SqliteStore::begin_operation`]): a session update, the one-time prekeys
//!   it consumed and the trust change it caused become visible together or not at all. WAL
//!   journal with `synchronous = FULL`: a commit is on disk before the call returns, so a
//!   ciphertext is never handed out for a ratchet state that a crash could roll back (which
//!   would make the next message reuse its message key).
//! - Opening never writes before the key is verified against the `key_check` row: a wrong key
//!   is [`StoreError::WrongKey`], a file that is not a store or is damaged is
//!   [`StoreError::Corrupt`], a row that fails authentication is [`StoreError::CorruptRecord`];
//!   none of them deletes or rewrites anything.
//! - `secure_delete` is on, so consumed prekeys and replaced session states are overwritten in
//!   the file rather than left in free pages.
//! - Schema migrations run in one transaction after the key check; `tests/fixtures/` holds a
//!   database written by schema version 1 that every later version must open.

mod crypto;
#[cfg(test)]
pub(crate) mod tests;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior, params};
use spots_core::community::{CommunityId, CommunityState, EpochId};
use spots_core::persist::Persist;
use spots_core::sender_keys::SenderKeyRecord;
use spots_core::store::{Changes, LocalIdentity, ProtocolStore};
use spots_core::{
    Address, AgentId, SessionRecord,
    devices::DeviceList,
    keys::{
        KyberPreKeyId, KyberPreKeyRecord, PreKeyId, PreKeyRecord, PublicKey, SignedPreKeyId,
        SignedPreKeyRecord,
    },
    prekey_lifecycle::PreKeyState,
    trust::TrustRecord,
};
use zeroize::Zeroizing;

pub(crate) use crypto::StoreKeys;
use crypto::{SALT_LEN, SealError};

/// The schema version this library writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: u32 = 1;
/// `PRAGMA application_id` of a SPOTS store: "SPTS".
pub const APPLICATION_ID: i32 = 0x5350_5453;
/// How long a call waits for another connection's write lock (another process, e.g. an iOS
/// notification extension) before failing with a retryable [`StoreError::Io`].
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

const SCHEMA_V1: &str = "
CREATE TABLE meta (name TEXT PRIMARY KEY NOT NULL, value BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE records (
    kind INTEGER NOT NULL,
    key BLOB NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (kind, key)
) WITHOUT ROWID;
";

/// What a row holds. The number is stored in the `kind` column and bound into the row id and
/// the AEAD associated data; never renumber.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Kind {
    Identity = 1,
    Session = 2,
    PreKey = 3,
    SignedPreKey = 4,
    KyberPreKey = 5,
    KyberLastResortUse = 6,
    Trust = 7,
    DeviceList = 8,
    PreKeyState = 9,
    LocalAddress = 10,
    SenderKey = 11,
    Community = 12,
}

impl Kind {
    const fn name(self) -> &'static str {
        match self {
            Self::Identity => "identity",
            Self::Session => "session",
            Self::PreKey => "prekey",
            Self::SignedPreKey => "signed prekey",
            Self::KyberPreKey => "kyber prekey",
            Self::KyberLastResortUse => "kyber last-resort use",
            Self::Trust => "trust",
            Self::DeviceList => "device list",
            Self::PreKeyState => "prekey state",
            Self::LocalAddress => "local address",
            Self::SenderKey => "sender key",
            Self::Community => "community",
        }
    }
}

/// Why the store failed. Nothing is ever deleted or overwritten on an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store key does not open this store (the file is intact).
    #[error("the store key does not open this store")]
    WrongKey,
    /// The file is not a SPOTS store, or SQLite found it damaged.
    #[error("not a SPOTS store, or the file is damaged: {0}")]
    Corrupt(String),
    /// A row failed authentication or does not decode (damage, or a row moved by hand).
    #[error("a stored {0} record is damaged")]
    CorruptRecord(&'static str),
    /// The file was written by a newer library (a downgrade): nothing was changed.
    #[error("the store has schema version {found}; this library supports up to {supported}")]
    TooNew {
        /// The file's schema version.
        found: u32,
        /// The newest this library knows.
        supported: u32,
    },
    /// The store belongs to another local device.
    #[error("the store belongs to {stored}, not {requested}")]
    AddressMismatch {
        /// The address the store was created for.
        stored: String,
        /// The address it was opened as.
        requested: String,
    },
    /// A batch would replace the identity or reuse a prekey id.
    #[error("the store already holds this {0}")]
    Conflict(&'static str),
    /// The operating system's random generator failed.
    #[error("no randomness available")]
    Random,
    /// SQLite failed (I/O error, disk full, busy): the operation changed nothing; retry later.
    #[error("storage failed: {0}")]
    Io(#[source] rusqlite::Error),
}

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        match error.sqlite_error_code() {
            Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
                Self::Corrupt(error.to_string())
            }
            Some(ErrorCode::ConstraintViolation)
                if matches!(
                    error,
                    rusqlite::Error::SqliteFailure(ref e, _)
                        if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                ) =>
            {
                Self::Conflict("id")
            }
            _ => Self::Io(error),
        }
    }
}

fn random<const N: usize>() -> Result<[u8; N], StoreError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|_| StoreError::Random)?;
    Ok(bytes)
}

/// A row id and its decrypted value.
type Row = ([u8; 32], Zeroizing<Vec<u8>>);

/// The on-device store of one local device.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Connection,
    keys: StoreKeys,
    /// Between `begin_operation` and `finish_operation`/`abort_operation`.
    in_operation: Cell<bool>,
    /// Decoded sessions and the local identity, keyed by row id and valid only for the exact
    /// sealed value they were decoded from (or written as): a read still fetches the row, and
    /// any change to it (another process, a rollback) misses the cache. Saves the AEAD and the
    /// strict decoding (key-pair checks) on the hot path.
    decoded: RefCell<Decoded>,
}

/// See [`SqliteStore::decoded`].
#[derive(Default)]
struct Decoded {
    identity: Option<(Vec<u8>, LocalIdentity)>,
    sessions: HashMap<[u8; 32], (Vec<u8>, SessionRecord)>,
}

impl core::fmt::Debug for Decoded {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Decoded")
            .field("identity", &self.identity.is_some())
            .field("sessions", &self.sessions.len())
            .finish()
    }
}

/// Most decoded sessions kept (the cache is emptied when full).
const DECODED_SESSIONS: usize = 256;

impl SqliteStore {
    /// Opens (or creates) the store at `path` for the device `local` with the app's 32-byte
    /// store key. See the module docs for what is checked before anything is written.
    pub fn open(path: &Path, store_key: &[u8; 32], local: &Address) -> Result<Self, StoreError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn = Connection::open_with_flags(path, flags)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let application_id: i32 = conn.query_row("PRAGMA application_id", [], |r| r.get(0))?;
        let version: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let objects: u32 =
            conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))?;
        let keys = if application_id == 0 && version == 0 && objects == 0 {
            configure(&conn)?;
            create(&mut conn, store_key)?
        } else {
            if application_id != APPLICATION_ID {
                return Err(StoreError::Corrupt(format!(
                    "application id {application_id:#x} is not a SPOTS store"
                )));
            }
            if version > SCHEMA_VERSION {
                return Err(StoreError::TooNew {
                    found: version,
                    supported: SCHEMA_VERSION,
                });
            }
            if version == 0 {
                return Err(StoreError::Corrupt("no schema version".into()));
            }
            let keys = unlock(&conn, store_key)?;
            configure(&conn)?;
            if version < SCHEMA_VERSION {
                migrate(&mut conn, version)?;
            }
            keys
        };
        let store = Self {
            conn,
            keys,
            in_operation: Cell::new(false),
            decoded: RefCell::new(Decoded::default()),
        };
        store.bind_address(local)?;
        Ok(store)
    }

    /// The schema version of the open file.
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        Ok(self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }

    /// Starts the transaction of one protocol operation (`BEGIN IMMEDIATE`): the operation's
    /// reads and its commit then see and write one consistent state even when another process
    /// uses the same file. A transaction left open by an interrupted operation is rolled back
    /// first.
    pub fn begin_operation(&self) -> Result<(), StoreError> {
        if !self.conn.is_autocommit() {
            self.conn.execute_batch("ROLLBACK")?;
        }
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        self.in_operation.set(true);
        Ok(())
    }

    /// Commits the operation transaction; on failure it is rolled back and nothing changed.
    pub fn finish_operation(&self) -> Result<(), StoreError> {
        self.in_operation.set(false);
        if let Err(error) = self.conn.execute_batch("COMMIT") {
            self.abort_operation();
            return Err(error.into());
        }
        Ok(())
    }

    /// Rolls the operation transaction back (the operation failed).
    pub fn abort_operation(&self) {
        self.in_operation.set(false);
        if !self.conn.is_autocommit() {
            // A failed rollback leaves SQLite to roll back when the connection closes or the
            // next operation begins; the state on disk is the previous one either way.
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }

    /// The local address the store was created for.
    fn bind_address(&self, local: &Address) -> Result<(), StoreError> {
        let requested = local.to_string();
        match self.get(Kind::LocalAddress, b"")? {
            Some(stored) if stored.as_slice() == requested.as_bytes() => Ok(()),
            Some(stored) => Err(StoreError::AddressMismatch {
                stored: String::from_utf8_lossy(&stored).into_owned(),
                requested,
            }),
            None => {
                let row = self.keys.row_id(Kind::LocalAddress, b"");
                let value =
                    self.keys
                        .seal_row(Kind::LocalAddress, &row, requested.as_bytes(), random()?);
                self.conn.execute(
                    "INSERT INTO records (kind, key, value) VALUES (?1, ?2, ?3)",
                    params![Kind::LocalAddress as u8, row, value],
                )?;
                Ok(())
            }
        }
    }

    /// The sealed value of one row.
    fn fetch(&self, kind: Kind, row: &[u8; 32]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT value FROM records WHERE kind = ?1 AND key = ?2")?
            .query_row(params![kind as u8, row], |r| r.get(0))
            .optional()?)
    }

    /// The decrypted value of one row.
    fn get(&self, kind: Kind, logical: &[u8]) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        let row = self.keys.row_id(kind, logical);
        self.fetch(kind, &row)?
            .map(|value| self.open_row(kind, &row, &value))
            .transpose()
    }

    /// The row ids and decrypted values of every row of a kind.
    fn list(&self, kind: Kind) -> Result<Vec<Row>, StoreError> {
        let mut statement = self
            .conn
            .prepare_cached("SELECT key, value FROM records WHERE kind = ?1")?;
        let rows = statement.query_map(params![kind as u8], |r| {
            Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Vec<u8>>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (key, value) = row?;
            let key: [u8; 32] = key
                .try_into()
                .map_err(|_| StoreError::CorruptRecord(kind.name()))?;
            let plain = self.open_row(kind, &key, &value)?;
            out.push((key, plain));
        }
        Ok(out)
    }

    fn open_row(
        &self,
        kind: Kind,
        row: &[u8; 32],
        value: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        self.keys
            .open_row(kind, row, value)
            .map_err(|SealError| StoreError::CorruptRecord(kind.name()))
    }

    fn decode<T: Persist>(kind: Kind, bytes: &[u8]) -> Result<T, StoreError> {
        T::from_record_bytes(bytes).map_err(|_| StoreError::CorruptRecord(kind.name()))
    }

    fn get_record<T: Persist>(&self, kind: Kind, logical: &[u8]) -> Result<Option<T>, StoreError> {
        self.get(kind, logical)?
            .map(|plain| Self::decode(kind, &plain))
            .transpose()
    }

    /// A prekey row's plaintext: `id (4, big-endian) || flag byte || record encoding`.
    fn get_prekey<T: Persist>(&self, kind: Kind, id: u32) -> Result<Option<T>, StoreError> {
        match self.get(kind, &id.to_be_bytes())? {
            Some(plain) => {
                let (stored_id, _, body) = split_prekey(kind, &plain)?;
                if stored_id != id {
                    return Err(StoreError::CorruptRecord(kind.name()));
                }
                Ok(Some(Self::decode(kind, body)?))
            }
            None => Ok(None),
        }
    }

    fn prekey_ids(&self, kind: Kind, one_time_only: bool) -> Result<Vec<u32>, StoreError> {
        let mut ids = Vec::new();
        for (_, plain) in self.list(kind)? {
            let (id, last_resort, _) = split_prekey(kind, &plain)?;
            if !(one_time_only && last_resort) {
                ids.push(id);
            }
        }
        ids.sort_unstable();
        Ok(ids)
    }
}

fn be_u32(kind: Kind, plain: &[u8]) -> Result<u32, StoreError> {
    let [a, b, c, d] = plain else {
        return Err(StoreError::CorruptRecord(kind.name()));
    };
    Ok(u32::from_be_bytes([*a, *b, *c, *d]))
}

fn split_prekey(kind: Kind, plain: &[u8]) -> Result<(u32, bool, &[u8]), StoreError> {
    let [a, b, c, d, flag, body @ ..] = plain else {
        return Err(StoreError::CorruptRecord(kind.name()));
    };
    Ok((u32::from_be_bytes([*a, *b, *c, *d]), *flag == 1, body))
}

/// Per-connection settings: WAL, durable commits, overwrite deleted content.
fn configure(conn: &Connection) -> Result<(), StoreError> {
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Corrupt(format!("journal mode {mode}")));
    }
    conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA secure_delete = ON;")?;
    Ok(())
}

/// Creates schema version 1 with a fresh salt and key check, in one transaction.
fn create(conn: &mut Connection, store_key: &[u8; 32]) -> Result<StoreKeys, StoreError> {
    let salt: [u8; SALT_LEN] = random()?;
    let keys = StoreKeys::derive(store_key, &salt);
    let check = keys.key_check(random()?);
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(SCHEMA_V1)?;
    tx.execute(
        "INSERT INTO meta (name, value) VALUES ('salt', ?1), ('key_check', ?2)",
        params![salt.as_slice(), check],
    )?;
    tx.execute_batch(&format!(
        "PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = 1;"
    ))?;
    tx.commit()?;
    Ok(keys)
}

/// Derives the subkeys of an existing store and checks them against its key check.
fn unlock(conn: &Connection, store_key: &[u8; 32]) -> Result<StoreKeys, StoreError> {
    let meta = |name: &str| -> Result<Vec<u8>, StoreError> {
        conn.query_row("SELECT value FROM meta WHERE name = ?1", [name], |r| {
            r.get(0)
        })
        .optional()?
        .ok_or_else(|| StoreError::Corrupt(format!("meta row {name} is missing")))
    };
    let salt = meta("salt")?;
    if salt.len() != SALT_LEN {
        return Err(StoreError::Corrupt("bad salt".into()));
    }
    let keys = StoreKeys::derive(store_key, &salt);
    if !keys.verify_key_check(&meta("key_check")?) {
        return Err(StoreError::WrongKey);
    }
    Ok(keys)
}

/// Schema steps: `MIGRATIONS[i]` takes a store from version `i + 1` to `i + 2`. Version 1 is
/// the first, so there are none yet; a step that SQL cannot express becomes a Rust function
/// here. Every version keeps opening `tests/fixtures/store-v1.sqlite`.
const MIGRATIONS: &[&str] = &[];

/// Upgrades a store from `from` to [`SCHEMA_VERSION`] in one transaction.
fn migrate(conn: &mut Connection, from: u32) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for version in from..SCHEMA_VERSION {
        let step = usize::try_from(version - 1)
            .ok()
            .and_then(|index| MIGRATIONS.get(index))
            .ok_or_else(|| {
                StoreError::Corrupt(format!("no migration from schema version {version}"))
            })?;
        tx.execute_batch(step)?;
    }
    tx.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))?;
    tx.commit()?;
    Ok(())
}

/// Writes one batch inside an open transaction or savepoint.
struct Writer<'a> {
    conn: &'a Connection,
    keys: &'a StoreKeys,
}

impl Writer<'_> {
    /// Writes one row; returns its row id and sealed value.
    fn put(
        &self,
        kind: Kind,
        logical: &[u8],
        plain: &[u8],
        replace: bool,
    ) -> Result<([u8; 32], Vec<u8>), StoreError> {
        let row = self.keys.row_id(kind, logical);
        let value = self.keys.seal_row(kind, &row, plain, random()?);
        let sql = if replace {
            "INSERT OR REPLACE INTO records (kind, key, value) VALUES (?1, ?2, ?3)"
        } else {
            "INSERT INTO records (kind, key, value) VALUES (?1, ?2, ?3)"
        };
        self.conn
            .prepare_cached(sql)?
            .execute(params![kind as u8, row, value])
            .map_err(|error| match StoreError::from(error) {
                StoreError::Conflict(_) => StoreError::Conflict(kind.name()),
                other => other,
            })?;
        Ok((row, value))
    }

    fn delete_row(&self, kind: Kind, row: &[u8; 32]) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("DELETE FROM records WHERE kind = ?1 AND key = ?2")?
            .execute(params![kind as u8, row])?;
        Ok(())
    }

    fn delete(&self, kind: Kind, logical: &[u8]) -> Result<(), StoreError> {
        self.delete_row(kind, &self.keys.row_id(kind, logical))
    }

    fn put_prekey(
        &self,
        kind: Kind,
        id: u32,
        last_resort: bool,
        encoding: &[u8],
    ) -> Result<(), StoreError> {
        let mut plain = Zeroizing::new(Vec::with_capacity(5 + encoding.len()));
        plain.extend_from_slice(&id.to_be_bytes());
        plain.push(u8::from(last_resort));
        plain.extend_from_slice(encoding);
        self.put(kind, &id.to_be_bytes(), &plain, false)?;
        Ok(())
    }
}

/// The logical key of a sender-key record: the epoch id, then the sender's address.
fn sender_key_key(sender: &Address, epoch: EpochId) -> Vec<u8> {
    let mut logical = epoch.as_bytes().to_vec();
    logical.extend_from_slice(sender.to_string().as_bytes());
    logical
}

fn kyber_use_key(id: KyberPreKeyId, base_key: &PublicKey) -> Vec<u8> {
    let mut logical = id.0.to_be_bytes().to_vec();
    logical.extend_from_slice(base_key.as_djb_bytes());
    logical
}

impl SqliteStore {
    fn apply(&self, changes: Changes) -> Result<(), StoreError> {
        let w = Writer {
            conn: &self.conn,
            keys: &self.keys,
        };
        let Changes {
            identity,
            sessions,
            removed_sessions,
            pre_keys,
            removed_pre_keys,
            signed_pre_keys,
            removed_signed_pre_keys,
            kyber_pre_keys,
            removed_kyber_pre_keys,
            kyber_last_resort_uses,
            trust,
            device_lists,
            prekey_state,
            sender_keys,
            communities,
        } = changes;
        if let Some(identity) = identity {
            w.put(Kind::Identity, b"", &identity.to_record_bytes(), false)?;
        }
        for address in removed_sessions {
            w.delete(Kind::Session, address.to_string().as_bytes())?;
        }
        for (address, record) in sessions {
            let (row, sealed) = w.put(
                Kind::Session,
                address.to_string().as_bytes(),
                &record.to_record_bytes(),
                true,
            )?;
            // The next read of this row (if the transaction commits) needs no decoding.
            self.remember_session(row, sealed, record);
        }
        for id in removed_pre_keys {
            w.delete(Kind::PreKey, &id.0.to_be_bytes())?;
        }
        for record in pre_keys {
            w.put_prekey(
                Kind::PreKey,
                record.id().0,
                false,
                &record.to_record_bytes(),
            )?;
        }
        for id in removed_signed_pre_keys {
            w.delete(Kind::SignedPreKey, &id.0.to_be_bytes())?;
        }
        for record in signed_pre_keys {
            w.put_prekey(
                Kind::SignedPreKey,
                record.id().0,
                false,
                &record.to_record_bytes(),
            )?;
        }
        for (id, base_key) in kyber_last_resort_uses {
            w.put(
                Kind::KyberLastResortUse,
                &kyber_use_key(id, &base_key),
                &id.0.to_be_bytes(),
                true,
            )?;
        }
        if !removed_kyber_pre_keys.is_empty() {
            for id in &removed_kyber_pre_keys {
                w.delete(Kind::KyberPreKey, &id.0.to_be_bytes())?;
            }
            // A removed last-resort key takes its use records with it.
            for (row, plain) in self.list(Kind::KyberLastResortUse)? {
                let id = be_u32(Kind::KyberLastResortUse, &plain)?;
                if removed_kyber_pre_keys.contains(&KyberPreKeyId(id)) {
                    w.delete_row(Kind::KyberLastResortUse, &row)?;
                }
            }
        }
        for record in kyber_pre_keys {
            w.put_prekey(
                Kind::KyberPreKey,
                record.id().0,
                record.is_last_resort(),
                &record.to_record_bytes(),
            )?;
        }
        for (address, record) in trust {
            w.put(
                Kind::Trust,
                address.to_string().as_bytes(),
                &record.to_record_bytes(),
                true,
            )?;
        }
        for (agent, list) in device_lists {
            w.put(
                Kind::DeviceList,
                agent.as_bytes(),
                &list.to_record_bytes(),
                true,
            )?;
        }
        if let Some(state) = prekey_state {
            w.put(Kind::PreKeyState, b"", &state.to_record_bytes(), true)?;
        }
        for ((sender, epoch), record) in sender_keys {
            w.put(
                Kind::SenderKey,
                &sender_key_key(&sender, epoch),
                &record.to_record_bytes(),
                true,
            )?;
        }
        for (id, state) in communities {
            w.put(
                Kind::Community,
                id.as_bytes(),
                &state.to_record_bytes(),
                true,
            )?;
        }
        Ok(())
    }
}

impl ProtocolStore for SqliteStore {
    type Error = StoreError;

    fn local_identity(&self) -> Result<Option<LocalIdentity>, Self::Error> {
        let row = self.keys.row_id(Kind::Identity, b"");
        let Some(value) = self.fetch(Kind::Identity, &row)? else {
            return Ok(None);
        };
        if let Some((sealed, identity)) = &self.decoded.borrow().identity
            && *sealed == value
        {
            return Ok(Some(identity.clone()));
        }
        let identity: LocalIdentity = Self::decode(
            Kind::Identity,
            &self.open_row(Kind::Identity, &row, &value)?,
        )?;
        self.decoded.borrow_mut().identity = Some((value, identity.clone()));
        Ok(Some(identity))
    }

    fn session(&self, address: &Address) -> Result<Option<SessionRecord>, Self::Error> {
        let row = self
            .keys
            .row_id(Kind::Session, address.to_string().as_bytes());
        let Some(value) = self.fetch(Kind::Session, &row)? else {
            return Ok(None);
        };
        if let Some((sealed, record)) = self.decoded.borrow().sessions.get(&row)
            && *sealed == value
        {
            return Ok(Some(record.clone()));
        }
        let record: SessionRecord =
            Self::decode(Kind::Session, &self.open_row(Kind::Session, &row, &value)?)?;
        self.remember_session(row, value, record.clone());
        Ok(Some(record))
    }

    fn pre_key(&self, id: PreKeyId) -> Result<Option<PreKeyRecord>, Self::Error> {
        self.get_prekey(Kind::PreKey, id.0)
    }

    fn pre_key_ids(&self) -> Result<Vec<PreKeyId>, Self::Error> {
        Ok(self
            .prekey_ids(Kind::PreKey, false)?
            .into_iter()
            .map(PreKeyId)
            .collect())
    }

    fn signed_pre_key(
        &self,
        id: SignedPreKeyId,
    ) -> Result<Option<SignedPreKeyRecord>, Self::Error> {
        self.get_prekey(Kind::SignedPreKey, id.0)
    }

    fn kyber_pre_key(&self, id: KyberPreKeyId) -> Result<Option<KyberPreKeyRecord>, Self::Error> {
        self.get_prekey(Kind::KyberPreKey, id.0)
    }

    fn one_time_kyber_pre_key_ids(&self) -> Result<Vec<KyberPreKeyId>, Self::Error> {
        Ok(self
            .prekey_ids(Kind::KyberPreKey, true)?
            .into_iter()
            .map(KyberPreKeyId)
            .collect())
    }

    fn kyber_last_resort_used(
        &self,
        id: KyberPreKeyId,
        base_key: &PublicKey,
    ) -> Result<bool, Self::Error> {
        Ok(self
            .get(Kind::KyberLastResortUse, &kyber_use_key(id, base_key))?
            .is_some())
    }

    fn trust(&self, address: &Address) -> Result<Option<TrustRecord>, Self::Error> {
        self.get_record(Kind::Trust, address.to_string().as_bytes())
    }

    fn device_list(&self, agent: &AgentId) -> Result<Option<DeviceList>, Self::Error> {
        self.get_record(Kind::DeviceList, agent.as_bytes())
    }

    fn prekey_state(&self) -> Result<Option<PreKeyState>, Self::Error> {
        self.get_record(Kind::PreKeyState, b"")
    }

    fn sender_key(
        &self,
        sender: &Address,
        key_id: EpochId,
    ) -> Result<Option<SenderKeyRecord>, Self::Error> {
        self.get_record(Kind::SenderKey, &sender_key_key(sender, key_id))
    }

    fn community(&self, id: CommunityId) -> Result<Option<CommunityState>, Self::Error> {
        self.get_record(Kind::Community, id.as_bytes())
    }

    /// One savepoint: inside an operation transaction it joins it, otherwise it is its own
    /// transaction. On any error everything the batch wrote is rolled back.
    fn commit(&mut self, changes: Changes) -> Result<(), Self::Error> {
        if !self.in_operation.get() && !self.conn.is_autocommit() {
            // Left open by an interrupted call: its writes were never committed.
            self.conn.execute_batch("ROLLBACK")?;
        }
        self.conn.execute_batch("SAVEPOINT spots_commit")?;
        match self.apply(changes) {
            Ok(()) => {
                if let Err(error) = self.conn.execute_batch("RELEASE spots_commit") {
                    self.rollback_savepoint();
                    return Err(error.into());
                }
                Ok(())
            }
            Err(error) => {
                self.rollback_savepoint();
                Err(error)
            }
        }
    }
}

impl SqliteStore {
    fn remember_session(&self, row: [u8; 32], sealed: Vec<u8>, record: SessionRecord) {
        let mut decoded = self.decoded.borrow_mut();
        if decoded.sessions.len() >= DECODED_SESSIONS {
            decoded.sessions.clear();
        }
        decoded.sessions.insert(row, (sealed, record));
    }

    fn rollback_savepoint(&self) {
        // If this fails too the connection is unusable; SQLite rolls the transaction back
        // when it closes, and the next operation rolls back whatever is left open.
        let _ = self
            .conn
            .execute_batch("ROLLBACK TO spots_commit; RELEASE spots_commit");
    }
}
