// A peer supporter tells the clinic: which of the other person's messages the responders
// see (sealed to them on this device with their franking proofs), what it is about, how
// serious, and a note. Leaving messages out is allowed and visible to the HP as a gap.
import { useState, type FormEvent } from "react";
import { useTranslation } from "react-i18next";
import type { Event, RiskCategory, Severity } from "peerbridge-web";
import { client, errorKey, isOffline } from "../sdk";
import { ErrorText } from "../ErrorText";
import { FlagStatus } from "./FlagStatus";

const CATEGORIES: RiskCategory[] = [
  "suicide_risk",
  "self_harm",
  "harm_to_others",
  "medical_urgency",
  "safeguarding",
  "boundary_violation",
  "other",
];
const SEVERITIES: Severity[] = ["imminent", "urgent", "concerning", "routine"];

export function FlagPanel(props: {
  conversation: string;
  messages: { seq: number; body: string }[];
  preselected: number[];
  suggested: { category: RiskCategory; severity: Severity } | null;
  subscribe: (l: (events: Event[]) => void) => () => void;
  onDone: () => void;
}) {
  const { t } = useTranslation();
  const [picked, setPicked] = useState<Set<number>>(new Set(props.preselected));
  const [category, setCategory] = useState<RiskCategory>(
    props.suggested?.category ?? "suicide_risk",
  );
  const [severity, setSeverity] = useState<Severity>(props.suggested?.severity ?? "urgent");
  const [note, setNote] = useState("");
  // The stored flag's id, or null while it waits on this device for a connection.
  const [sent, setSent] = useState<{ flag: string | null } | null>(null);
  const [error, setError] = useState<string | null>(null);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    try {
      const seqs = [...picked].sort((a, b) => a - b);
      const receipt = await (
        await client()
      ).raiseFlag(props.conversation, category, severity, note.trim(), seqs);
      setSent({ flag: receipt.id });
    } catch (err) {
      if (isOffline(err)) setSent({ flag: null });
      else setError(t(errorKey(err)));
    }
  };

  if (sent) {
    return (
      <div className="card">
        <FlagStatus
          flag={sent.flag}
          conversation={props.conversation}
          subscribe={props.subscribe}
        />
        <button type="button" className="secondary" onClick={props.onDone}>
          {t("help.close")}
        </button>
      </div>
    );
  }

  return (
    <form onSubmit={submit} className="card" aria-labelledby="peerflag-title">
      <h2 id="peerflag-title">{t("peerflag.title")}</h2>
      <fieldset>
        <legend>{t("peerflag.pick")}</legend>
        {props.messages.map((m) => (
          <div key={m.seq} className="check">
            <input
              type="checkbox"
              id={`quote-${m.seq}`}
              checked={picked.has(m.seq)}
              onChange={(e) => {
                const next = new Set(picked);
                if (e.target.checked) next.add(m.seq);
                else next.delete(m.seq);
                setPicked(next);
              }}
            />
            <label htmlFor={`quote-${m.seq}`}>{m.body}</label>
          </div>
        ))}
      </fieldset>
      <label htmlFor="flag-category">{t("peerflag.category")}</label>
      <select
        id="flag-category"
        value={category}
        onChange={(e) => setCategory(e.target.value as RiskCategory)}
      >
        {CATEGORIES.map((c) => (
          <option key={c} value={c}>
            {t(`category.${c}`)}
          </option>
        ))}
      </select>
      <label htmlFor="flag-severity">{t("peerflag.severity")}</label>
      <select
        id="flag-severity"
        value={severity}
        onChange={(e) => setSeverity(e.target.value as Severity)}
      >
        {SEVERITIES.map((s) => (
          <option key={s} value={s}>
            {t(`severity.${s}`)}
          </option>
        ))}
      </select>
      <label htmlFor="flag-note-peer">{t("peerflag.note")}</label>
      <textarea
        id="flag-note-peer"
        rows={2}
        value={note}
        onChange={(e) => setNote(e.target.value)}
      />
      <ErrorText text={error} />
      <div className="actions">
        <button type="submit" className="urgent">
          {t("peerflag.send")}
        </button>
        <button type="button" className="secondary" onClick={props.onDone}>
          {t("peerflag.cancel")}
        </button>
      </div>
    </form>
  );
}
