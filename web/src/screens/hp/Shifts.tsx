// Shifts on the clinic's clock: who is on duty (or next responder) on which days, from when
// to when. A shift that ends at or before its start runs into the next day (a night shift);
// on a public holiday only shifts that include public holidays apply.
import { useTranslation } from "react-i18next";
import type { RosterLevel, Shift, ShiftDay, UserSummary } from "peerbridge-web";
import { Choices } from "../../Choices";
import { userLabel } from "../../people";

const DAYS: ShiftDay[] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun", "holiday"];
const WEEKDAYS: ShiftDay[] = ["mon", "tue", "wed", "thu", "fri"];

export function Shifts(props: {
  shifts: Shift[];
  staff: UserSummary[];
  names: Record<string, string>;
  onChange: (shifts: Shift[]) => void;
}) {
  const { t } = useTranslation();
  const hps = props.staff.filter((u) => u.role === "hp");
  const set = (i: number, patch: Partial<Shift>) =>
    props.onChange(props.shifts.map((s, j) => (j === i ? { ...s, ...patch } : s)));

  return (
    <fieldset>
      <legend>{t("shifts.title")}</legend>
      <p>{t("shifts.hint")}</p>
      {props.shifts.map((s, i) => (
        <fieldset key={i}>
          <legend>{t("shifts.shift", { n: i + 1 })}</legend>
          <label htmlFor={`shift-hp-${i}`}>{t("shifts.who")}</label>
          <select
            id={`shift-hp-${i}`}
            value={s.hp_id}
            onChange={(e) => set(i, { hp_id: e.target.value })}
          >
            {hps.map((u) => (
              <option key={u.id} value={u.id}>
                {userLabel(u, props.names)}
              </option>
            ))}
          </select>
          <label htmlFor={`shift-level-${i}`}>{t("shifts.level")}</label>
          <select
            id={`shift-level-${i}`}
            value={s.level}
            onChange={(e) => set(i, { level: e.target.value as RosterLevel })}
          >
            <option value="on_duty">{t("shifts.on_duty")}</option>
            <option value="next_responder">{t("shifts.next_responder")}</option>
          </select>
          <Choices
            legend={t("shifts.days")}
            options={DAYS.map((d) => ({ key: d, label: t(`shifts.day.${d}`) }))}
            chosen={s.days}
            onChange={(days) => set(i, { days: days as ShiftDay[] })}
          />
          <label htmlFor={`shift-start-${i}`}>{t("shifts.start")}</label>
          <input
            id={`shift-start-${i}`}
            type="time"
            value={s.start}
            onChange={(e) => set(i, { start: e.target.value })}
          />
          <label htmlFor={`shift-end-${i}`}>{t("shifts.end")}</label>
          <input
            id={`shift-end-${i}`}
            type="time"
            value={s.end}
            onChange={(e) => set(i, { end: e.target.value })}
          />
          <button
            type="button"
            className="secondary"
            onClick={() => props.onChange(props.shifts.filter((_, j) => j !== i))}
          >
            {t("shifts.remove", { n: i + 1 })}
          </button>
        </fieldset>
      ))}
      <button
        type="button"
        className="secondary"
        disabled={hps.length === 0}
        onClick={() =>
          props.onChange([
            ...props.shifts,
            {
              hp_id: hps[0]?.id ?? "",
              level: "on_duty",
              days: WEEKDAYS,
              start: "08:00",
              end: "16:00",
            },
          ])
        }
      >
        {t("shifts.add")}
      </button>
    </fieldset>
  );
}
