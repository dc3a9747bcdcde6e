// Setting the app lock: a passcode the person chooses (at least 6 characters), asked for
// when the app opens and after a few minutes without use.
import { useState, type FormEvent } from "react";
import { useTranslation } from "react-i18next";
import { errorKey, setPasscode } from "../sdk";
import { ErrorText } from "../ErrorText";

export const MIN_PASSCODE = 6;

export function AppLock(props: { locked: boolean; onSet: () => void }) {
  const { t } = useTranslation();
  const [first, setFirst] = useState("");
  const [second, setSecond] = useState("");
  const [message, setMessage] = useState<string | null>(null);

  if (props.locked) return <p className="muted">{t("settings.on")}</p>;

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (first.length < MIN_PASSCODE) return setMessage(t("settings.tooShort"));
    if (first !== second) return setMessage(t("settings.mismatch"));
    try {
      await setPasscode(first);
      setMessage(null);
      props.onSet();
    } catch (err) {
      setMessage(t(errorKey(err)));
    }
  };

  return (
    <form onSubmit={submit} aria-labelledby="applock-title">
      <h2 id="applock-title">{t("settings.title")}</h2>
      <p>{t("settings.hint")}</p>
      <label htmlFor="new-passcode">{t("settings.passcode")}</label>
      <input
        id="new-passcode"
        type="password"
        autoComplete="new-password"
        value={first}
        onChange={(e) => setFirst(e.target.value)}
      />
      <label htmlFor="new-passcode-again">{t("settings.again")}</label>
      <input
        id="new-passcode-again"
        type="password"
        autoComplete="new-password"
        value={second}
        onChange={(e) => setSecond(e.target.value)}
      />
      <ErrorText text={message} />
      <button type="submit">{t("settings.save")}</button>
    </form>
  );
}
