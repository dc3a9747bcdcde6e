// The app lock: a passcode opens this browser's store (a wrong one opens nothing).
import { useState, type FormEvent } from "react";
import { useTranslation } from "react-i18next";
import { errorKey, unlock } from "../sdk";
import { ErrorText } from "../ErrorText";

export function Lock(props: { onUnlocked: () => void }) {
  const { t } = useTranslation();
  const [code, setCode] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await unlock(code);
      props.onUnlocked();
    } catch (err) {
      setError(t(errorKey(err)));
      setCode("");
    } finally {
      setBusy(false);
    }
  };

  return (
    <form onSubmit={submit} aria-labelledby="lock-title">
      <h1 id="lock-title">{t("lock.title")}</h1>
      <label htmlFor="passcode">{t("lock.passcode")}</label>
      <input
        id="passcode"
        type="password"
        autoComplete="current-password"
        required
        value={code}
        onChange={(e) => setCode(e.target.value)}
        aria-describedby={error ? "lock-error" : undefined}
      />
      <ErrorText text={error} id="lock-error" />
      <button type="submit" disabled={busy}>
        {t("lock.unlock")}
      </button>
    </form>
  );
}
