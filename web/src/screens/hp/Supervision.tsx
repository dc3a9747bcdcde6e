// Supervision for an HP: debrief requests from the peers they supervise (acknowledge), and
// the supervision conversations (start one with a peer, open it).
import { useCallback, useEffect, useState } from "react";
import { useTranslation } from "react-i18next";
import type { ConversationInfo, Debrief, UserSummary } from "peerbridge-web";
import { client } from "../../sdk";
import type { Listener } from "../../App";
import { useAction } from "../../useAction";
import { ErrorText } from "../../ErrorText";
import { userLabel } from "../../people";
import { when } from "../../format";
import { Chat } from "../Chat";

export function Supervision(props: { clinic: string; subscribe: (l: Listener) => () => void }) {
  const { t } = useTranslation();
  const { error, run, refresh } = useAction();
  const [debriefs, setDebriefs] = useState<Debrief[] | null>(null);
  const [convs, setConvs] = useState<ConversationInfo[]>([]);
  const [peers, setPeers] = useState<UserSummary[]>([]);
  const [peer, setPeer] = useState("");
  const [open, setOpen] = useState<ConversationInfo | null>(null);

  const load = useCallback(async () => {
    const c = await client();
    setDebriefs(await c.debriefQueue());
    setConvs((await c.conversations()).filter((x) => x.kind === "supervision"));
    setPeers((await c.clinicUsers(props.clinic)).filter((u) => u.role === "peer"));
  }, [props.clinic]);

  const { subscribe } = props;
  useEffect(() => {
    void refresh(load);
    return subscribe((events) => {
      if (events.some((e) => e.type === "debrief_changed" || e.type === "joined"))
        void refresh(load);
    });
  }, [load, refresh, subscribe]);

  if (open) {
    return (
      <Chat
        conversation={open.id}
        title={t("supervision.chat")}
        counterpart={t("supervision.other")}
        peer={false}
        online={navigator.onLine}
        subscribe={props.subscribe}
        onBack={() => setOpen(null)}
      />
    );
  }

  return (
    <section aria-labelledby="supervision-title">
      <h1 id="supervision-title">{t("supervision.title")}</h1>
      <ErrorText text={error} />
      <h2>{t("supervision.debriefs")}</h2>
      {debriefs === null ? (
        <p role="status">{t("app.loading")}</p>
      ) : debriefs.length === 0 ? (
        <p>{t("supervision.noDebriefs")}</p>
      ) : (
        <ul className="cards">
          {debriefs.map((d) => (
            <li key={d.id} className={`card severity-${d.severity}`}>
              <p>
                {t("supervision.debrief", {
                  severity: t(`severity.${d.severity}`),
                  when: when(d.created_at),
                  deadline: when(d.deadline_at),
                })}
              </p>
              <p className="muted">{t(`status.${d.status}`)}</p>
              {d.status === "open" && (
                <button
                  type="button"
                  onClick={() =>
                    run(async () => {
                      await (await client()).acknowledgeDebrief(d.id);
                      await load();
                    })
                  }
                >
                  {t("supervision.acknowledge")}
                </button>
              )}
            </li>
          ))}
        </ul>
      )}
      <h2>{t("supervision.conversations")}</h2>
      {convs.length === 0 ? (
        <p>{t("supervision.noConversations")}</p>
      ) : (
        <ul className="cards">
          {convs.map((c) => (
            <li key={c.id} className="card">
              <button type="button" onClick={() => setOpen(c)}>
                {t("supervision.open", { count: c.unread })}
              </button>
            </li>
          ))}
        </ul>
      )}
      <label htmlFor="supervision-peer">{t("supervision.startWith")}</label>
      <select id="supervision-peer" value={peer} onChange={(e) => setPeer(e.target.value)}>
        <option value="">{t("supervision.choose")}</option>
        {peers.map((p) => (
          <option key={p.id} value={p.id}>
            {userLabel(p, {})}
          </option>
        ))}
      </select>
      <button
        type="button"
        disabled={!peer}
        onClick={() =>
          run(async () => {
            const made = await (await client()).createSupervisionConversation(peer);
            await load();
            setOpen(made);
          })
        }
      >
        {t("supervision.start")}
      </button>
    </section>
  );
}
