// Invites: the HP enters who is invited (name and phone are sealed on the server and shown
// only to staff), hands over the one-time code in person — read aloud, or the QR code the
// person scans to open the app's join screen — and sees which invites were used.
import { useCallback, useEffect, useState, type FormEvent } from "react";
import { useTranslation } from "react-i18next";
import type { EnrolleeRole, Invite, InviteCreated } from "peerbridge-web";
import { client } from "../../sdk";
import { useAction } from "../../useAction";
import { ErrorText } from "../../ErrorText";
import { Qr } from "../../Qr";
import { when } from "../../format";

export function Invites(props: { clinic: string; onPerson: (user: string) => void }) {
  const { t } = useTranslation();
  const { error, busy, run } = useAction();
  const [role, setRole] = useState<EnrolleeRole>("service_user");
  const [name, setName] = useState("");
  const [phone, setPhone] = useState("");
  const [created, setCreated] = useState<InviteCreated | null>(null);
  const [list, setList] = useState<Invite[] | null>(null);

  const load = useCallback(async () => {
    const all = await (await client()).invites(props.clinic);
    setList([...all].sort((a, b) => b.created_at.localeCompare(a.created_at)));
  }, [props.clinic]);

  useEffect(() => {
    void run(load);
  }, [load, run]);

  const create = async (e: FormEvent) => {
    e.preventDefault();
    const made = await run(async () =>
      (await client()).createInvite(props.clinic, role, name.trim() || null, phone.trim() || null),
    );
    if (made) {
      setCreated(made);
      setName("");
      setPhone("");
      await run(load);
    }
  };

  return (
    <section aria-labelledby="invites-title">
      <h1 id="invites-title">{t("invites.title")}</h1>
      <ErrorText text={error} />
      {created ? (
        <div className="card handover">
          <h2>{t("invites.created")}</h2>
          <p>{t("invites.once")}</p>
          <p>
            {t("invites.code")} <code className="invite-code">{created.code}</code>
          </p>
          <Qr text={created.qr_payload} label={t("invites.qr")} />
          <p className="muted">{t("invites.expires", { when: when(created.expires_at) })}</p>
          <button type="button" onClick={() => setCreated(null)}>
            {t("invites.done")}
          </button>
        </div>
      ) : (
        <form onSubmit={create} className="card">
          <h2>{t("invites.new")}</h2>
          <fieldset>
            <legend>{t("invites.role")}</legend>
            {(["service_user", "peer"] as const).map((r) => (
              <label key={r} className="inline">
                <input
                  type="radio"
                  name="role"
                  value={r}
                  checked={role === r}
                  onChange={() => setRole(r)}
                />
                {t(`role.${r}`)}
              </label>
            ))}
          </fieldset>
          <label htmlFor="invite-name">{t("invites.name")}</label>
          <input
            id="invite-name"
            autoComplete="off"
            value={name}
            onChange={(e) => setName(e.target.value)}
          />
          <label htmlFor="invite-phone">{t("invites.phone")}</label>
          <input
            id="invite-phone"
            type="tel"
            autoComplete="off"
            value={phone}
            onChange={(e) => setPhone(e.target.value)}
          />
          <p className="muted">{t("invites.sealed")}</p>
          <button type="submit" disabled={busy}>
            {t("invites.create")}
          </button>
        </form>
      )}
      <h2>{t("invites.list")}</h2>
      {list === null ? (
        <p role="status">{t("app.loading")}</p>
      ) : list.length === 0 ? (
        <p>{t("invites.none")}</p>
      ) : (
        <ul className="cards">
          {list.map((i) => (
            <li key={i.id} className="card">
              <p>
                {t("invites.row", {
                  role: t(`role.${i.role}`),
                  status: t(`inviteStatus.${i.status}`),
                  when: when(i.created_at),
                })}
              </p>
              <div className="actions">
                {i.status === "pending" && (
                  <button
                    type="button"
                    className="secondary"
                    onClick={() =>
                      run(async () => {
                        await (await client()).revokeInvite(props.clinic, i.id);
                        await load();
                      })
                    }
                  >
                    {t("invites.revoke")}
                  </button>
                )}
                {i.redeemed_by && (
                  <button
                    type="button"
                    className="secondary"
                    onClick={() => i.redeemed_by && props.onPerson(i.redeemed_by)}
                  >
                    {i.role === "peer" ? t("invites.toPeer") : t("invites.toMatch")}
                  </button>
                )}
              </div>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
