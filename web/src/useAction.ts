// One pattern for every button that calls the SDK: clear the last error, run, show the
// API's problem code in plain words if it fails. Reloads that events trigger in the
// background go through `refresh`: they neither disable the person's buttons (a tap landing
// while a refresh runs would be lost) nor clear the error an action of theirs just showed.
import { useCallback, useState } from "react";
import i18n from "./i18n";
import { errorKey } from "./sdk";

/** `run` is stable across language changes: screens load in effects that depend on it, and
 * a new language must not reload a form over what the person has typed. */
export function useAction() {
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const run = useCallback(async <T>(f: () => Promise<T>): Promise<T | undefined> => {
    setError(null);
    setBusy(true);
    try {
      return await f();
    } catch (e) {
      setError(i18n.t(errorKey(e)));
      return undefined;
    } finally {
      setBusy(false);
    }
  }, []);
  const refresh = useCallback(async (f: () => Promise<void>): Promise<void> => {
    try {
      await f();
    } catch (e) {
      setError(i18n.t(errorKey(e)));
    }
  }, []);
  return { error, busy, run, refresh, setError };
}
