// One flag as its responder sees it: the excerpt opened and verified on this device (a
// verification failure is an error, never a quiet display), any gaps in the quoted
// sequence, the raiser's note; acknowledge, add notes, resolve with an outcome.
import { useCallback, useEffect, useRef, useState } from "react";
import { useTranslation } from "react-i18next";
import type { Flag, FlagOutcome, OpenedFlag } from "peerbridge-web";
import { client, errorKey } from "../sdk";
import { ErrorText } from "../ErrorText";
import { FlagSubject } from "./FlagSubject";
import { Reassign } from "./Reassign";

const OUTCOMES: FlagOutcome[] = [
  "contacted_the_person",
  "referred_to_emergency_services",
  "follow_up_booked",
  "false_alarm",
  "other",
];

export function FlagView(props: { flag: Flag; onBack: () => void }) {
  const { t } = useTranslation();
  const [opened, setOpened] = useState<OpenedFlag | null>(null);
  const [flag, setFlag] = useState<Flag>(props.flag);
  const [note, setNote] = useState("");
  const [outcome, setOutcome] = useState<FlagOutcome>("contacted_the_person");
  const [error, setError] = useState<string | null>(null);
  const heading = useRef<HTMLHeadingElement>(null);

  const load = useCallback(async () => {
    try {
      const o = await (await client()).openFlag(props.flag.id);
      setOpened(o);
      setFlag(o.flag);
    } catch (e) {
      setError(t(errorKey(e)));
    }
  }, [props.flag.id, t]);

  useEffect(() => {
    heading.current?.focus();
    void load();
  }, [load]);

  const act = async (f: () => Promise<unknown>) => {
    setError(null);
    try {
      await f();
      await load();
    } catch (e) {
      setError(t(errorKey(e)));
    }
  };

  const lines = opened?.lines ?? [];
  const gaps: { after: number; count: number }[] = [];
  for (let i = 1; i < lines.length; i++) {
    const missing = lines[i].seq - lines[i - 1].seq - 1;
    if (missing > 0) gaps.push({ after: lines[i - 1].seq, count: missing });
  }

  return (
    <section aria-labelledby="flag-title">
      <button type="button" className="secondary" onClick={props.onBack}>
        {t("flag.back")}
      </button>
      <h1 id="flag-title" ref={heading} tabIndex={-1}>
        {t("flag.title", {
          category: t(`category.${flag.category}`),
          severity: t(`severity.${flag.severity}`),
        })}
      </h1>
      <p>{t("flag.status", { status: t(`status.${flag.status}`) })}</p>
      {flag.kind === "help_now" && <p className="alarm">{t("flag.helpNow")}</p>}
      <ErrorText text={error} />
      {opened && (
        <>
          {lines.length > 0 && <p className="verified">{t("flag.verified")}</p>}
          <ol className="messages">
            {lines.map((l) => (
              <li key={l.seq} className="theirs">
                <span className="who">{l.sender}</span>
                <span className="body">{l.text}</span>
                {gaps
                  .filter((g) => g.after === l.seq)
                  .map((g) => (
                    <span key={g.after} className="gap">
                      {t("flag.gap", { count: g.count })}
                    </span>
                  ))}
              </li>
            ))}
          </ol>
          <h2>{t("flag.note")}</h2>
          <p>{opened.note || t("flag.noNote")}</p>
        </>
      )}
      <FlagSubject flag={flag.id} />
      {flag.status === "open" && (
        <button
          type="button"
          onClick={() => act(async () => (await client()).acknowledgeFlag(flag.id))}
        >
          {t("flag.acknowledge")}
        </button>
      )}
      {flag.status !== "resolved" && (
        <>
          <label htmlFor="flag-note">{t("flag.addNote")}</label>
          <textarea
            id="flag-note"
            rows={2}
            value={note}
            onChange={(e) => setNote(e.target.value)}
          />
          <button
            type="button"
            className="secondary"
            disabled={!note.trim()}
            onClick={() =>
              act(async () => {
                await (await client()).addFlagNote(flag.id, note.trim());
                setNote("");
              })
            }
          >
            {t("flag.saveNote")}
          </button>
          <Reassign flag={flag.id} clinic={flag.clinic_id} onDone={() => void load()} />
          <label htmlFor="outcome">{t("flag.resolveAs")}</label>
          <select
            id="outcome"
            value={outcome}
            onChange={(e) => setOutcome(e.target.value as FlagOutcome)}
          >
            {OUTCOMES.map((o) => (
              <option key={o} value={o}>
                {t(`outcome.${o}`)}
              </option>
            ))}
          </select>
          <button
            type="button"
            onClick={() => act(async () => (await client()).resolveFlag(flag.id, outcome, null))}
          >
            {t("flag.resolve")}
          </button>
        </>
      )}
    </section>
  );
}
