// One introduction's conversation: the history on this device, new messages as they arrive,
// and sending (queued by the SDK while offline).
import { useCallback, useEffect, useMemo, useRef, useState, type FormEvent } from "react";
import { useTranslation } from "react-i18next";
import {
  PeerbridgeWeb,
  type Event,
  type PartyIntroduction,
  type RiskSuggestion,
} from "peerbridge-web";
import { client, errorKey } from "../sdk";
import type { Listener } from "../App";
import { FlagPanel } from "./FlagPanel";
import { ErrorText } from "../ErrorText";

type Line = Extract<Event, { type: "text" }>;
type Notice = Extract<Event, { type: "notice" }>;

export function Chat(props: {
  intro: PartyIntroduction;
  /** Peers see the detector's suggestions and can tell the clinic. */
  peer: boolean;
  online: boolean;
  subscribe: (l: Listener) => () => void;
  onBack: () => void;
}) {
  const { t } = useTranslation();
  const conv = props.intro.conversation_id ?? "";
  const [lines, setLines] = useState<Line[]>([]);
  const [notices, setNotices] = useState<Notice[]>([]);
  const [draft, setDraft] = useState("");
  const [error, setError] = useState<string | null>(null);
  const heading = useRef<HTMLHeadingElement>(null);
  const [flagging, setFlagging] = useState<{ seqs: number[]; risk: RiskSuggestion | null } | null>(
    null,
  );

  const load = useCallback(async () => {
    try {
      const c = await client();
      await c.sync(conv);
      const page = await c.history(conv, null, 200);
      setLines(page.events.filter((e): e is Line => e.type === "text"));
      setNotices(page.events.filter((e): e is Notice => e.type === "notice"));
    } catch (e) {
      setError(t(errorKey(e)));
    }
  }, [conv, t]);

  useEffect(() => {
    heading.current?.focus();
    void load();
    return props.subscribe((events) => {
      if (events.some((e) => "conversation" in e && e.conversation === conv)) void load();
    });
  }, [conv, load, props]);

  // The on-device detector reads each received message once per load, not per render.
  const risks = useMemo(
    () =>
      new Map(
        props.peer
          ? lines
              .filter((l) => !l.sender.is_me)
              .map((l) => [l.seq, PeerbridgeWeb.detectRisk(l.body)] as const)
          : [],
      ),
    [lines, props.peer],
  );

  const send = async (e: FormEvent) => {
    e.preventDefault();
    const text = draft.trim();
    if (!text) return;
    // Cleared at once: what the person types while this send is on its way is theirs.
    setDraft("");
    setError(null);
    try {
      await (await client()).sendText(conv, text);
      await load();
    } catch (err) {
      setError(t(errorKey(err)));
      setDraft((d) => d || text);
    }
  };

  return (
    <section aria-labelledby="chat-title">
      <button type="button" className="secondary" onClick={props.onBack}>
        {t("nav.back")}
      </button>
      <h1 id="chat-title" ref={heading} tabIndex={-1}>
        {t("chat.with", { alias: props.intro.counterpart_alias })}
      </h1>
      <ol className="messages" aria-live="polite">
        {lines.length === 0 && <li className="muted">{t("chat.empty")}</li>}
        {lines.map((l) => {
          // The on-device detector only suggests; the peer decides.
          const risk = risks.get(l.seq) ?? null;
          return (
            <li key={`${l.seq}-${l.id}`} className={l.sender.is_me ? "mine" : "theirs"}>
              <span className="who">
                {l.sender.is_me ? t("chat.me") : props.intro.counterpart_alias}
              </span>
              <span className="body">{l.body}</span>
              {risk && !flagging && (
                <span className="suggest">
                  {t("peerflag.suggest")}{" "}
                  <button
                    type="button"
                    className="secondary"
                    onClick={() => setFlagging({ seqs: [l.seq], risk })}
                  >
                    {t("peerflag.open")}
                  </button>
                </span>
              )}
            </li>
          );
        })}
      </ol>
      {notices.map((n) => (
        <p key={n.seq} className="notice" role="status">
          {n.text}
        </p>
      ))}
      {props.peer && !flagging && (
        <button
          type="button"
          className="secondary"
          onClick={() => setFlagging({ seqs: [], risk: null })}
        >
          {t("peerflag.open")}
        </button>
      )}
      {flagging && (
        <FlagPanel
          conversation={conv}
          messages={lines.filter((l) => !l.sender.is_me).map((l) => ({ seq: l.seq, body: l.body }))}
          preselected={flagging.seqs}
          suggested={flagging.risk}
          onDone={() => setFlagging(null)}
        />
      )}
      <ErrorText text={error} />
      <form onSubmit={send} className="compose">
        <label htmlFor="message">{t("chat.message")}</label>
        <textarea id="message" rows={2} value={draft} onChange={(e) => setDraft(e.target.value)} />
        <button type="submit">{t("chat.send")}</button>
        {!props.online && <p className="muted">{t("chat.queued")}</p>}
      </form>
    </section>
  );
}
