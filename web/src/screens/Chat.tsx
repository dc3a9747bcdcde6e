// A conversation (an introduction's, or a peer's supervision with their HPs): the history on
// this device, new messages as they arrive, read receipts both ways, and sending (queued by
// the SDK while offline). In an introduction, the options (consents, identity cards, pause,
// close, block, report) sit below the messages.
import { useCallback, useEffect, useMemo, useRef, useState, type FormEvent } from "react";
import { useTranslation } from "react-i18next";
import {
  PeerbridgeWeb,
  type DraftOffer,
  type Event,
  type Locale,
  type PartyIntroduction,
  type RiskSuggestion,
} from "peerbridge-web";
import { client, errorKey } from "../sdk";
import type { Listener } from "../App";
import { FlagPanel } from "./FlagPanel";
import { ChatOptions } from "./ChatOptions";
import { CrisisNumbers } from "./Help";
import { ErrorText } from "../ErrorText";

type Line = Extract<Event, { type: "text" }>;
type Notice = Extract<Event, { type: "notice" }>;
type Receipt = Extract<Event, { type: "receipt" }>;

export function Chat(props: {
  conversation: string;
  /** The heading ("Conversation with Fjellrev", "Supervision"). */
  title: string;
  /** How the other side's lines are labelled. */
  counterpart: string;
  intro?: PartyIntroduction;
  /** Peers see the detector's suggestions and can tell the clinic. */
  peer: boolean;
  online: boolean;
  subscribe: (l: Listener) => () => void;
  onBack: () => void;
  /** Opens "I need help now" (crisis resources, telling the clinic). */
  onHelp?: () => void;
}) {
  const { t, i18n } = useTranslation();
  const conv = props.conversation;
  // The clinic's own wording of "a clinician was asked to check in", in this reader's
  // language (the notice in the conversation carries the sender's language).
  const [clinicNotice, setClinicNotice] = useState<string | null>(null);
  const [lines, setLines] = useState<Line[]>([]);
  const [read, setRead] = useState<Set<string>>(new Set());
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
      const texts = page.events.filter((e): e is Line => e.type === "text");
      const receipts = page.events.filter((e): e is Receipt => e.type === "receipt");
      setLines(texts);
      setNotices(page.events.filter((e): e is Notice => e.type === "notice"));
      setRead(new Set(receipts.filter((r) => !r.sender.is_me).flatMap((r) => r.ids)));
      // What this person has now seen gets a read receipt, once, and only while the page is
      // in front of them (the SDK keeps no record of receipts sent, so the highest seq
      // receipted is kept here).
      const key = `pb.read.${conv}`;
      const done = Number(localStorage.getItem(key) ?? "0");
      const unread = texts.filter((l) => !l.sender.is_me && l.seq > done);
      if (unread.length > 0 && document.visibilityState === "visible") {
        await c.sendReadReceipt(
          conv,
          unread.slice(-500).map((l) => l.id),
        );
        localStorage.setItem(key, String(Math.max(...unread.map((l) => l.seq))));
      }
    } catch (e) {
      setError(t(errorKey(e)));
    }
  }, [conv, t]);

  const { subscribe } = props;
  useEffect(() => {
    heading.current?.focus();
    void load();
    return subscribe((events) => {
      if (events.some((e) => "conversation" in e && e.conversation === conv)) void load();
    });
  }, [conv, load, subscribe]);

  useEffect(() => {
    // Only the answer for the language now chosen counts (switching quickly must not let an
    // older answer win).
    let current = true;
    client()
      .then((c) => c.crisisResources(i18n.language as Locale))
      .then((r) => current && setClinicNotice(r.check_in_notice ?? null))
      .catch(() => current && setClinicNotice(null));
    return () => {
      current = false;
    };
  }, [i18n.language]);

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

  // The writer's own draft, read on this device only (the SDK's `draftOffer`): when it
  // sounds like risk, help is offered next to the compose box, with the clinic's numbers.
  // Nothing is sent or flagged by this. Read once the typing pauses; only the answer for
  // the draft as it is now counts.
  const [offer, setOffer] = useState<DraftOffer | null>(null);
  const [debriefAsked, setDebriefAsked] = useState(false);
  useEffect(() => {
    if (draft.trim().length <= 8) {
      setOffer(null);
      return;
    }
    let current = true;
    const timer = setTimeout(() => {
      client()
        .then((c) => c.draftOffer(draft))
        .then((o) => current && setOffer(o ?? null))
        .catch(() => current && setOffer(null));
    }, 250);
    return () => {
      current = false;
      clearTimeout(timer);
    };
  }, [draft]);

  const askDebrief = async () => {
    setError(null);
    try {
      await (await client()).requestDebrief(props.intro?.id ?? null, true);
      setDebriefAsked(true);
    } catch (err) {
      setError(t(errorKey(err)));
    }
  };

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
        {props.title}
      </h1>
      <ol className="messages" aria-live="polite">
        {lines.length === 0 && <li className="muted">{t("chat.empty")}</li>}
        {lines.map((l) => {
          // The on-device detector only suggests; the peer decides.
          const risk = risks.get(l.seq) ?? null;
          return (
            <li key={`${l.seq}-${l.id}`} className={l.sender.is_me ? "mine" : "theirs"}>
              <span className="who">{l.sender.is_me ? t("chat.me") : props.counterpart}</span>
              <span className="body">{l.body}</span>
              {l.sender.is_me && read.has(l.id) && <span className="muted">{t("chat.read")}</span>}
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
          {n.kind === "clinician_asked" && clinicNotice ? clinicNotice : n.text}
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
          subscribe={props.subscribe}
          onDone={() => setFlagging(null)}
        />
      )}
      <ErrorText text={error} />
      <form onSubmit={send} className="compose">
        <label htmlFor="message">{t("chat.message")}</label>
        <textarea id="message" rows={2} value={draft} onChange={(e) => setDraft(e.target.value)} />
        {offer && (offer.help_now || offer.debrief) && (
          <div className="suggest" role="status">
            <p>
              {offer.help_now ? t("chat.draftHelp") : t("chat.draftDebrief")}{" "}
              {offer.help_now && props.onHelp && (
                <button type="button" className="urgent" onClick={props.onHelp}>
                  {t("nav.help")}
                </button>
              )}
              {offer.debrief &&
                (debriefAsked ? (
                  <span>{t("self.asked")}</span>
                ) : (
                  <button type="button" className="urgent" onClick={() => void askDebrief()}>
                    {t("chat.draftDebriefAsk")}
                  </button>
                ))}
            </p>
            <CrisisNumbers resources={offer.resources.resources} />
          </div>
        )}
        <button type="submit">{t("chat.send")}</button>
        {!props.online && <p className="muted">{t("chat.queued")}</p>}
      </form>
      {props.intro && (
        <ChatOptions intro={props.intro} subscribe={props.subscribe} onEnded={props.onBack} />
      )}
    </section>
  );
}
