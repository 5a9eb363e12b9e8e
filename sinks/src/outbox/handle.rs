//! The outbox's handle on its redb file: opened checked, reopened after an
//! I/O failure.
//!
//! - **Checked at open.** The file is opened with redb's integrity check
//!   (every page checksum of the committed trees verified), so a file
//!   damaged outside redb is refused at start with its path, the reason and
//!   the recovery, instead of panicking later in the middle of a delivery.
//!   A panic inside redb while opening is caught and reported the same way.
//! - **Reopened after an I/O failure.** Once a write fails (disk full, a
//!   read-only remount), redb refuses everything after with "previous I/O
//!   error" until the database is opened again. The handle drops it and
//!   opens it anew once every operation in flight has let go of it; redb
//!   then recovers the last durable commit. What was committed without
//!   fsync since then is lost by that, so the outbox applies again what it
//!   took since its last sync (see `Outbox::reopen`).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use super::{Error, Result};

/// Why an operation failed, for deciding what to do about it.
pub(crate) fn is_io(e: &Error) -> bool {
    match e {
        Error::Store(e) | Error::Open { source: e, .. } => io_failure(e),
        _ => false,
    }
}

fn io_failure(e: &redb::Error) -> bool {
    matches!(
        e,
        redb::Error::Io(_) | redb::Error::PreviousIo | redb::Error::DatabaseClosed
    )
}

/// The text of a caught panic.
fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic inside redb".to_string())
}

fn corrupt(path: &Path, reason: &str) -> Error {
    Error::Corrupt {
        what: path.display().to_string(),
        reason: format!(
            "{reason}; to start anyway, move it aside (queued notifications, receipts and \
             dead letters are then lost; the engine's checkpoint and the journal are not)"
        ),
    }
}

/// Opens (creating) the outbox file, checked.
pub(crate) fn open(path: &Path) -> Result<redb::Database> {
    let opened = catch_unwind(AssertUnwindSafe(|| {
        redb::Builder::new()
            .set_check_integrity_on_open(true)
            .create(path)
    }));
    match opened {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(redb::DatabaseError::Storage(redb::StorageError::Corrupted(reason)))) => {
            Err(corrupt(path, &reason))
        }
        Ok(Err(e)) => {
            let e = redb::Error::from(e);
            match &e {
                redb::Error::Io(io) if io.kind() == std::io::ErrorKind::InvalidData => {
                    Err(corrupt(path, &io.to_string()))
                }
                _ => Err(Error::Open {
                    path: path.to_path_buf(),
                    source: Box::new(e),
                }),
            }
        }
        Err(p) => Err(corrupt(
            path,
            &format!("redb panicked reading it: {}", panic_text(&*p)),
        )),
    }
}

/// The database, shared by the pipeline and the delivery tasks.
#[derive(Debug)]
pub(crate) struct Handle {
    path: PathBuf,
    db: RwLock<Option<Arc<redb::Database>>>,
    /// Why the last reopen failed for a reason other than I/O (the file is
    /// damaged): every operation then fails with it, and the caller stops.
    broken: RwLock<Option<String>>,
}

impl Handle {
    pub(crate) fn new(path: PathBuf, db: redb::Database) -> Handle {
        Handle {
            path,
            db: RwLock::new(Some(Arc::new(db))),
            broken: RwLock::new(None),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The database, for one operation (hold it no longer).
    pub(crate) fn get(&self) -> Result<Arc<redb::Database>> {
        if let Some(db) = self
            .db
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
        {
            return Ok(db);
        }
        match self
            .broken
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
        {
            Some(reason) => Err(Error::Corrupt {
                what: self.path.display().to_string(),
                reason,
            }),
            None => Err(Error::Store(Box::new(redb::Error::DatabaseClosed))),
        }
    }

    /// Drops the database and opens it again; `Ok(false)` while an
    /// operation still holds it (try again shortly).
    pub(crate) fn reopen(&self) -> Result<bool> {
        let mut slot = self.db.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(current) = slot.take() {
            match Arc::try_unwrap(current) {
                Ok(db) => drop(db),
                Err(still_used) => {
                    *slot = Some(still_used);
                    return Ok(false);
                }
            }
        }
        match open(&self.path) {
            Ok(db) => {
                *slot = Some(Arc::new(db));
                Ok(true)
            }
            Err(e) => {
                if !is_io(&e) {
                    *self.broken.write().unwrap_or_else(PoisonError::into_inner) =
                        Some(e.to_string());
                }
                Err(e)
            }
        }
    }
}
