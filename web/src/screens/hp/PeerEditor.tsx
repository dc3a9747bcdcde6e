// What the clinic keeps about a peer supporter (languages, topics, capacity, when they are
// usually available) and the approval after training.
import { useEffect, useState, type FormEvent } from "react";
import { useTranslation } from "react-i18next";
import type { PeerProfile, SupervisorAssignment, Topic } from "peerbridge-web";
import { client } from "../../sdk";
import { useAction } from "../../useAction";
import { ErrorText } from "../../ErrorText";
import { today } from "../../format";
import { Choices } from "../../Choices";

export const SPOKEN = ["nb", "nn", "en", "se", "sv", "da", "fr", "es", "ar", "so", "ti", "pl"];

export function PeerEditor(props: {
  clinic: string;
  peer: string;
  profile: PeerProfile | null;
  onSaved: () => void;
}) {
  const { t } = useTranslation();
  const { error, busy, run } = useAction();
  const p = props.profile;
  const [languages, setLanguages] = useState<string[]>(p?.languages ?? ["nb"]);
  const [topics, setTopics] = useState<string[]>(p?.topics ?? []);
  const [allTopics, setAllTopics] = useState<Topic[]>([]);
  const [capacity, setCapacity] = useState(String(p?.capacity ?? 3));
  const [availability, setAvailability] = useState(p?.availability ?? "");
  const [trained, setTrained] = useState(p?.trained_on ?? today());
  const [saved, setSaved] = useState(false);
  const [supervisors, setSupervisors] = useState<SupervisorAssignment[]>([]);
  const [me, setMe] = useState("");
  const id = props.peer.slice(0, 8);

  useEffect(() => {
    void run(async () => {
      const c = await client();
      setAllTopics(await c.topics(props.clinic));
      setSupervisors(await c.supervisors(props.clinic, props.peer));
      setMe((await c.session())?.user_id ?? "");
    });
  }, [props.clinic, props.peer, run]);

  const supervise = () =>
    run(async () => {
      const c = await client();
      await c.assignSupervisor(props.clinic, props.peer, me);
      setSupervisors(await c.supervisors(props.clinic, props.peer));
    });

  const save = async (e: FormEvent, approve: boolean) => {
    e.preventDefault();
    setSaved(false);
    const ok = await run(async () => {
      const c = await client();
      await c.setPeerProfile(props.clinic, props.peer, {
        languages,
        topics,
        capacity: Number(capacity),
        availability: availability.trim() || null,
      });
      if (approve) await c.approvePeer(props.clinic, props.peer, trained);
      return true;
    });
    if (ok) {
      setSaved(true);
      props.onSaved();
    }
  };

  return (
    <form className="editor" onSubmit={(e) => save(e, false)}>
      <Choices
        legend={t("peer.languages")}
        options={SPOKEN.map((l) => ({ key: l, label: t(`spoken.${l}`) }))}
        chosen={languages}
        onChange={setLanguages}
      />
      {allTopics.length > 0 && (
        <Choices
          legend={t("peer.topics")}
          options={allTopics.map((x) => ({ key: x.key, label: x.label }))}
          chosen={topics}
          onChange={setTopics}
        />
      )}
      <label htmlFor={`capacity-${id}`}>{t("peer.capacity")}</label>
      <input
        id={`capacity-${id}`}
        type="number"
        min={0}
        max={50}
        value={capacity}
        onChange={(e) => setCapacity(e.target.value)}
      />
      <label htmlFor={`availability-${id}`}>{t("peer.availability")}</label>
      <input
        id={`availability-${id}`}
        value={availability}
        onChange={(e) => setAvailability(e.target.value)}
      />
      <ErrorText text={error} />
      {saved && <p role="status">{t("peer.saved")}</p>}
      <div className="actions">
        <button type="submit" className="secondary" disabled={busy}>
          {t("peer.save")}
        </button>
      </div>
      <p>{t("peer.supervisors", { count: supervisors.length })}</p>
      {me && !supervisors.some((a) => a.hp_id === me) && (
        <button type="button" className="secondary" disabled={busy} onClick={supervise}>
          {t("peer.supervise")}
        </button>
      )}
      {supervisors.some((a) => a.hp_id === me) && <p>{t("peer.youSupervise")}</p>}
      {p?.approved ? (
        <div className="actions">
          <p>{t("peer.approvedOn", { date: p.trained_on ?? "" })}</p>
          <button
            type="button"
            className="secondary"
            onClick={() =>
              run(async () => {
                await (await client()).withdrawPeerApproval(props.clinic, props.peer);
                props.onSaved();
              })
            }
          >
            {t("peer.withdraw")}
          </button>
        </div>
      ) : (
        <>
          <label htmlFor={`trained-${id}`}>{t("peer.trainedOn")}</label>
          <input
            id={`trained-${id}`}
            type="date"
            value={trained}
            onChange={(e) => setTrained(e.target.value)}
          />
          <button type="button" disabled={busy} onClick={(e) => save(e, true)}>
            {t("peer.approve")}
          </button>
        </>
      )}
    </form>
  );
}
