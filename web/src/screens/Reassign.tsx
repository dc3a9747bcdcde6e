// Hand a flag to another clinician of the clinic (staff are listed without names until the
// HP asks; each name look-up is audited).
import { useEffect, useState } from "react";
import { useTranslation } from "react-i18next";
import type { UserSummary } from "peerbridge-web";
import { client } from "../sdk";
import { useAction } from "../useAction";
import { ErrorText } from "../ErrorText";
import { lookUpNames, userLabel } from "../people";

export function Reassign(props: { flag: string; clinic: string; onDone: () => void }) {
  const { t } = useTranslation();
  const { error, busy, run } = useAction();
  const [staff, setStaff] = useState<UserSummary[]>([]);
  const [names, setNames] = useState<Record<string, string>>({});
  const [to, setTo] = useState("");

  useEffect(() => {
    void run(async () => {
      const c = await client();
      const me = (await c.session())?.user_id;
      setStaff(
        (await c.clinicUsers(props.clinic)).filter(
          (u) =>
            (u.role === "hp" || u.role === "clinic_admin") && u.status === "active" && u.id !== me,
        ),
      );
    });
  }, [props.clinic, run]);

  const showNames = () => run(async () => setNames(await lookUpNames(props.clinic, staff)));

  if (staff.length === 0) return null;
  return (
    <div className="card">
      <label htmlFor="reassign-to">{t("reassign.to")}</label>
      <select id="reassign-to" value={to} onChange={(e) => setTo(e.target.value)}>
        <option value="">{t("reassign.choose")}</option>
        {staff.map((u) => (
          <option key={u.id} value={u.id}>
            {userLabel(u, names)}
          </option>
        ))}
      </select>
      <div className="actions">
        <button type="button" className="secondary" onClick={showNames}>
          {t("clinic.showNames")}
        </button>
        <button
          type="button"
          disabled={!to || busy}
          onClick={() =>
            run(async () => {
              await (await client()).reassignFlag(props.flag, to);
              props.onDone();
            })
          }
        >
          {t("reassign.submit")}
        </button>
      </div>
      <ErrorText text={error} />
    </div>
  );
}
