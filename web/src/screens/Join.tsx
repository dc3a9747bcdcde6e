// Enrolment: the invite code from the clinic (typed, or filled in from the join link or QR
// code), redeemed with this browser's new device key; a link's clinic key is pinned with it.
import { useState, type FormEvent } from "react";
import { useTranslation } from "react-i18next";
import type { SessionInfo } from "peerbridge-web";
import { client, errorKey } from "../sdk";
import { ErrorText } from "../ErrorText";

export function Join(props: {
  initialCode: string;
  /** The clinic's key from the invite link, if it came with one. */
  authority: string;
  onJoined: (s: SessionInfo) => void;
  onStaff: () => void;
}) {
  const { t } = useTranslation();
  const [code, setCode] = useState(props.initialCode);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const c = await client();
      const typed = code.trim().toUpperCase();
      // The link's clinic key goes with its own code only (a code typed over it has none).
      const invite =
        props.authority && typed === props.initialCode.toUpperCase()
          ? `code=${typed}&authority=${props.authority}`
          : typed;
      const s = await c.enroll(invite, t("app.name"));
      await c.ensureKeyPackages();
      props.onJoined(s);
    } catch (err) {
      setError(t(errorKey(err)));
    } finally {
      setBusy(false);
    }
  };

  return (
    <form onSubmit={submit} aria-labelledby="join-title">
      <h1 id="join-title">{t("join.title")}</h1>
      <p>{t("join.intro")}</p>
      <label htmlFor="code">{t("join.code")}</label>
      <input
        id="code"
        name="code"
        autoComplete="one-time-code"
        autoCapitalize="characters"
        spellCheck={false}
        required
        value={code}
        onChange={(e) => setCode(e.target.value)}
        aria-describedby={error ? "join-error" : undefined}
      />
      <ErrorText text={error} id="join-error" />
      <button type="submit" disabled={busy}>
        {busy ? t("join.working") : t("join.submit")}
      </button>
      <p>
        <button type="button" className="secondary" onClick={props.onStaff}>
          {t("staff.link")}
        </button>
      </p>
    </form>
  );
}
