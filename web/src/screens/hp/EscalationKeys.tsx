// Who may read a flag's quoted messages is the clinic's decision, not the server's. For
// every HP: this workstation's key fingerprint, to show the clinic admin. For clinic
// admins: the clinic's key (made on this device once, never sent anywhere) and the HP
// devices waiting to be certified; the admin types the code the HP's own screen shows, so
// a device the server slipped in cannot be certified by a click.
import { useCallback, useEffect, useState, type FormEvent } from "react";
import { useTranslation } from "react-i18next";
import type { EscalationKeyReview } from "peerbridge-web";
import { client } from "../../sdk";
import { useAction } from "../../useAction";
import { ErrorText } from "../../ErrorText";

/** This device's fingerprint, for every HP (shown in the console). */
export function MyEscalationKey() {
  const { t } = useTranslation();
  const [fingerprint, setFingerprint] = useState<string | null>(null);
  useEffect(() => {
    void (async () => setFingerprint(await (await client()).escalationKeyFingerprint()))();
  }, []);
  if (!fingerprint) return null;
  return (
    <p className="muted">
      {t("keys.mine")} <code id="my-escalation-key">{fingerprint}</code>
    </p>
  );
}

/** Clinic admins: the clinic's key and certification of HP devices. */
export function EscalationKeys() {
  const { t } = useTranslation();
  const { error, busy, run } = useAction();
  const [authority, setAuthority] = useState<string | null>(null);
  const [keys, setKeys] = useState<EscalationKeyReview[]>([]);
  const [typed, setTyped] = useState<Record<string, string>>({});
  const [done, setDone] = useState<string | null>(null);

  const load = useCallback(async () => {
    const c = await client();
    setAuthority(await c.escalationAuthorityFingerprint());
    setKeys(await c.escalationKeys());
  }, []);

  useEffect(() => {
    void run(load);
  }, [load, run]);

  const setUp = () =>
    run(async () => {
      await (await client()).setupEscalationAuthority();
      await load();
    });

  const certify = (k: EscalationKeyReview) => (e: FormEvent) => {
    e.preventDefault();
    setDone(null);
    void run(async () => {
      await (await client()).certifyEscalationKey(k.device_id, typed[k.device_id] ?? "");
      setDone(k.device_id);
      await load();
    });
  };

  return (
    <section className="card" aria-labelledby="keys-title">
      <h2 id="keys-title">{t("keys.title")}</h2>
      <p>{t("keys.explain")}</p>
      {authority ? (
        <p>
          {t("keys.authority")} <code>{authority}</code>
        </p>
      ) : (
        <>
          <p role="alert">{t("keys.noAuthority")}</p>
          <button type="button" onClick={() => void setUp()} disabled={busy}>
            {t("keys.setUp")}
          </button>
        </>
      )}
      <ul className="plain">
        {keys.map((k) => (
          <li key={k.device_id}>
            <p>
              <strong>{k.display_name}</strong> · {k.device_label} ·{" "}
              {k.certified ? t("keys.certified") : t("keys.notCertified")}
            </p>
            {!k.certified && authority && (
              <form onSubmit={certify(k)}>
                <label htmlFor={`fp-${k.device_id}`}>
                  {t("keys.typeCode", { name: k.display_name })}
                </label>
                <input
                  id={`fp-${k.device_id}`}
                  autoComplete="off"
                  spellCheck={false}
                  value={typed[k.device_id] ?? ""}
                  onChange={(e) => setTyped({ ...typed, [k.device_id]: e.target.value })}
                />
                <button type="submit" disabled={busy}>
                  {t("keys.certify")}
                </button>
              </form>
            )}
            {done === k.device_id && <p role="status">{t("keys.done")}</p>}
          </li>
        ))}
      </ul>
      <ErrorText text={error} />
    </section>
  );
}
