// People of the clinic, without identifying fields unless the HP asks (each look-up is
// audited): peer supporters to approve and describe, service users to match. Matching: the
// person's needs, the ranked suggestions with the reasons for each, then a proposal under
// aliases with a short description for each side.
import { useCallback, useEffect, useState } from "react";
import { useTranslation } from "react-i18next";
import type { PeerProfile, UserSummary } from "peerbridge-web";
import { client } from "../../sdk";
import { useAction } from "../../useAction";
import { ErrorText } from "../../ErrorText";
import { lookUpNames, userLabel } from "../../people";
import { PeerEditor } from "./PeerEditor";
import { Matching } from "./Matching";
import { Introductions } from "./Introductions";

export function People(props: { clinic: string; focus: string | null }) {
  const { t } = useTranslation();
  const { error, run } = useAction();
  const [users, setUsers] = useState<UserSummary[] | null>(null);
  const [profiles, setProfiles] = useState<PeerProfile[]>([]);
  const [names, setNames] = useState<Record<string, string>>({});
  const [open, setOpen] = useState<string | null>(props.focus);

  const load = useCallback(async () => {
    const c = await client();
    const [u, p] = await Promise.all([c.clinicUsers(props.clinic), c.peerProfiles(props.clinic)]);
    setUsers([...u].sort((a, b) => b.created_at.localeCompare(a.created_at)));
    setProfiles(p);
  }, [props.clinic]);

  useEffect(() => {
    void run(load);
  }, [load, run]);

  const showName = (u: UserSummary) =>
    run(async () => {
      const found = await lookUpNames(props.clinic, [u]);
      setNames((n) => ({ ...n, ...found }));
    });

  const section = (role: "peer" | "service_user") => {
    const list = (users ?? []).filter((u) => u.role === role && u.status === "active");
    return (
      <section aria-labelledby={`people-${role}`}>
        <h2 id={`people-${role}`}>{t(`people.${role}`)}</h2>
        {list.length === 0 ? (
          <p>{t("people.none")}</p>
        ) : (
          <ul className="cards">
            {list.map((u) => {
              const profile = profiles.find((p) => p.peer_id === u.id) ?? null;
              return (
                <li key={u.id} className="card">
                  <p>
                    <strong>{userLabel(u, names)}</strong>
                    {role === "peer" && (
                      <span className="muted">
                        {" "}
                        {profile?.approved ? t("people.approved") : t("people.notApproved")}
                      </span>
                    )}
                  </p>
                  <div className="actions">
                    {!names[u.id] && (
                      <button type="button" className="secondary" onClick={() => showName(u)}>
                        {t("people.showName")}
                      </button>
                    )}
                    <button
                      type="button"
                      aria-expanded={open === u.id}
                      onClick={() => setOpen(open === u.id ? null : u.id)}
                    >
                      {role === "peer" ? t("people.editPeer") : t("people.match")}
                    </button>
                  </div>
                  {open === u.id &&
                    (role === "peer" ? (
                      <PeerEditor
                        clinic={props.clinic}
                        peer={u.id}
                        profile={profile}
                        onSaved={() => run(load)}
                      />
                    ) : (
                      <Matching clinic={props.clinic} user={u.id} />
                    ))}
                </li>
              );
            })}
          </ul>
        )}
      </section>
    );
  };

  return (
    <section aria-labelledby="people-title">
      <h1 id="people-title">{t("people.title")}</h1>
      <p className="muted">{t("people.audited")}</p>
      <ErrorText text={error} />
      {users === null ? (
        <p role="status">{t("app.loading")}</p>
      ) : (
        <>
          {section("service_user")}
          {section("peer")}
          <Introductions clinic={props.clinic} />
        </>
      )}
    </section>
  );
}
