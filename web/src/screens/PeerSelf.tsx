// A peer supporter's own page: how many conversations they can take and when they are
// usually free, a pause (no new introductions; existing ones go on), asking their
// supervisors for a debrief after a hard conversation, and logging consultations.
import { useCallback, useEffect, useState, type FormEvent } from "react";
import { useTranslation } from "react-i18next";
import type { Consultation, ConsultationKind, Debrief, PeerProfile } from "peerbridge-web";
import { client } from "../sdk";
import type { Listener } from "../App";
import { useAction } from "../useAction";
import { ErrorText } from "../ErrorText";
import { today, when } from "../format";

const KINDS: ConsultationKind[] = ["chat", "call", "video", "meeting"];

export function PeerSelf(props: { subscribe: (l: Listener) => () => void; onBack: () => void }) {
  const { t } = useTranslation();
  const { error, busy, run, refresh } = useAction();
  const [profile, setProfile] = useState<PeerProfile | null>(null);
  const [capacity, setCapacity] = useState("3");
  const [availability, setAvailability] = useState("");
  const [saved, setSaved] = useState(false);
  const [debriefs, setDebriefs] = useState<Debrief[]>([]);
  const [urgent, setUrgent] = useState(false);
  const [asked, setAsked] = useState(false);
  const [logs, setLogs] = useState<Consultation[]>([]);
  const [date, setDate] = useState(today);
  const [minutes, setMinutes] = useState("30");
  const [kind, setKind] = useState<ConsultationKind>("chat");

  const load = useCallback(async () => {
    const c = await client();
    try {
      const p = await c.ownPeerProfile();
      setProfile(p);
      setCapacity(String(p.capacity));
      setAvailability(p.availability ?? "");
    } catch (e) {
      // The clinic has not described this peer yet: the rest of the page still works.
      if ((e as { code?: string })?.code !== "not_found") throw e;
    }
    setDebriefs(await c.myDebriefs());
    setLogs(await c.myConsultations());
  }, []);

  const { subscribe } = props;
  useEffect(() => {
    void refresh(load);
    return subscribe((events) => {
      if (events.some((e) => e.type === "debrief_changed")) void refresh(load);
    });
  }, [load, refresh, subscribe]);

  const save = async (e: FormEvent, paused?: boolean) => {
    e.preventDefault();
    setSaved(false);
    const ok = await run(async () => {
      setProfile(
        await (
          await client()
        ).updateOwnPeerProfile({
          capacity: Number(capacity),
          availability: availability.trim() || null,
          paused: paused ?? null,
        }),
      );
      return true;
    });
    if (ok) setSaved(true);
  };

  const ask = async () => {
    const ok = await run(async () => {
      await (await client()).requestDebrief(null, urgent);
      await load();
      return true;
    });
    if (ok) setAsked(true);
  };

  const log = async (e: FormEvent) => {
    e.preventDefault();
    await run(async () => {
      await (await client()).logConsultation(date, Number(minutes), kind);
      await load();
    });
  };

  return (
    <section aria-labelledby="self-title">
      <button type="button" className="secondary" onClick={props.onBack}>
        {t("nav.back")}
      </button>
      <h1 id="self-title">{t("self.title")}</h1>
      <ErrorText text={error} />
      {profile && (
        <form onSubmit={(e) => save(e)} className="card">
          <h2>{t("self.availabilityTitle")}</h2>
          <p>{profile.paused ? t("self.pausedNow") : t("self.activeNow")}</p>
          <label htmlFor="self-capacity">{t("peer.capacity")}</label>
          <input
            id="self-capacity"
            type="number"
            min={0}
            max={50}
            value={capacity}
            onChange={(e) => setCapacity(e.target.value)}
          />
          <label htmlFor="self-availability">{t("peer.availability")}</label>
          <input
            id="self-availability"
            value={availability}
            onChange={(e) => setAvailability(e.target.value)}
          />
          <div className="actions">
            <button type="submit" disabled={busy}>
              {t("peer.save")}
            </button>
            <button
              type="button"
              className="secondary"
              disabled={busy}
              onClick={(e) => save(e, !profile.paused)}
            >
              {profile.paused ? t("self.resume") : t("self.pause")}
            </button>
          </div>
          {saved && <p role="status">{t("peer.saved")}</p>}
        </form>
      )}

      <div className="card">
        <h2>{t("self.debriefTitle")}</h2>
        <p>{t("self.debriefExplain")}</p>
        <label className="inline">
          <input type="checkbox" checked={urgent} onChange={() => setUrgent(!urgent)} />
          {t("self.urgent")}
        </label>
        <button type="button" disabled={busy} onClick={ask}>
          {t("self.askDebrief")}
        </button>
        {asked && <p role="status">{t("self.asked")}</p>}
        <ul>
          {debriefs.map((d) => (
            <li key={d.id}>
              {t("self.debriefRow", { when: when(d.created_at), status: t(`status.${d.status}`) })}
            </li>
          ))}
        </ul>
      </div>

      <form onSubmit={log} className="card">
        <h2>{t("self.logTitle")}</h2>
        <label htmlFor="log-date">{t("self.date")}</label>
        <input id="log-date" type="date" value={date} onChange={(e) => setDate(e.target.value)} />
        <label htmlFor="log-minutes">{t("self.minutes")}</label>
        <input
          id="log-minutes"
          type="number"
          min={1}
          value={minutes}
          onChange={(e) => setMinutes(e.target.value)}
        />
        <label htmlFor="log-kind">{t("self.kind")}</label>
        <select
          id="log-kind"
          value={kind}
          onChange={(e) => setKind(e.target.value as ConsultationKind)}
        >
          {KINDS.map((k) => (
            <option key={k} value={k}>
              {t(`kind.${k}`)}
            </option>
          ))}
        </select>
        <button type="submit" disabled={busy}>
          {t("self.log")}
        </button>
        <ul>
          {logs.map((l) => (
            <li key={l.id}>
              {t("self.logRow", {
                date: l.date,
                minutes: l.duration_minutes,
                kind: t(`kind.${l.kind}`),
              })}
            </li>
          ))}
        </ul>
      </form>
    </section>
  );
}
