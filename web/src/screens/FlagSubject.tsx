// Who a flag is about — only with a stated reason, which the server records in the audit log
// with the look-up. The clinician needs it to reach the person; nobody else sees it.
import { useState, type FormEvent } from "react";
import { useTranslation } from "react-i18next";
import type { SubjectIdentity } from "peerbridge-web";
import { client } from "../sdk";
import { useAction } from "../useAction";
import { ErrorText } from "../ErrorText";

export function FlagSubject(props: { flag: string }) {
  const { t } = useTranslation();
  const { error, busy, run } = useAction();
  const [reason, setReason] = useState("");
  const [who, setWho] = useState<SubjectIdentity | null>(null);

  const look = async (e: FormEvent) => {
    e.preventDefault();
    const found = await run(async () => (await client()).flagSubject(props.flag, reason.trim()));
    if (found) setWho(found);
  };

  return (
    <section aria-labelledby="subject-title" className="card">
      <h2 id="subject-title">{t("subject.title")}</h2>
      {who ? (
        <div role="status">
          <p>{t("subject.name", { name: who.display_name ?? t("people.noName") })}</p>
          <p>{t("subject.phone", { phone: who.phone ?? "–" })}</p>
        </div>
      ) : (
        <form onSubmit={look}>
          <p>{t("subject.explain")}</p>
          <label htmlFor="subject-reason">{t("subject.reason")}</label>
          <textarea
            id="subject-reason"
            rows={2}
            maxLength={500}
            value={reason}
            onChange={(e) => setReason(e.target.value)}
          />
          <button type="submit" className="secondary" disabled={busy || reason.trim().length < 3}>
            {t("subject.show")}
          </button>
        </form>
      )}
      <ErrorText text={error} />
    </section>
  );
}
