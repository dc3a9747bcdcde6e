//! The app's rows in the same store, and atomic steps spanning MLS and app writes.

use super::*;

impl Client {
    /// Runs `f` as one atomic step of the device store: every client operation inside it
    /// (e.g. [`Client::process`]) and every [`Client::app_write`] lands in one SQLite
    /// transaction when `f` succeeds, and nothing of it when `f` fails or the process dies
    /// first. This is how the app makes a received message's ratchet step and its own
    /// bookkeeping (cursor, inbox, history) one write: a message key is never consumed
    /// without the message being kept. External rejoins (`rejoin*`) park their state and
    /// must not run inside a scope.
    pub fn atomically<T, E: From<Error>>(
        &mut self,
        f: impl FnOnce(&mut Client) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        // Outermost: start from an empty stage; nested: remember it to undo only this part.
        let savepoint = if self.scope_depth == 0 {
            self.store.discard();
            None
        } else {
            Some(self.store.savepoint().map_err(Error::from)?)
        };
        self.scope_depth += 1;
        let out = f(self);
        self.scope_depth -= 1;
        match (&out, savepoint) {
            (Ok(_), None) => self.store.commit().map_err(Error::from)?,
            (Err(_), None) => self.store.discard(),
            (Err(_), Some(sp)) => self.store.rollback_to(sp).map_err(Error::from)?,
            (Ok(_), Some(_)) => {}
        }
        out
    }

    /// Reads one of the app's own rows (sealed in the same store as the MLS state; inside
    /// [`Client::atomically`] it sees the step's writes).
    pub fn app_get(&self, key: &[u8]) -> Result<Option<Zeroizing<Vec<u8>>>> {
        Ok(self.store.get(&app_key(key))?)
    }

    /// Writes (`Some`) and deletes (`None`) app rows in one transaction (or as part of the
    /// enclosing [`Client::atomically`] step).
    pub fn app_write(
        &mut self,
        batch: impl IntoIterator<Item = (Vec<u8>, Option<Vec<u8>>)>,
    ) -> Result<()> {
        self.transact(|c| {
            for (key, value) in batch {
                match value {
                    Some(v) => c.store.put(&app_key(&key), v)?,
                    None => c.store.delete(&app_key(&key))?,
                }
            }
            Ok(())
        })
    }

    /// Folds the store's write-ahead log into its file (every commit is already durable;
    /// this leaves one compact file when the app goes to the background).
    pub fn checkpoint(&self) -> Result<()> {
        Ok(self.store.checkpoint()?)
    }
}
