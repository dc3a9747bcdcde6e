// What a party can decide about their introduction, in plain words: showing who they are
// (only when both agree, and only what they filled in), inviting a clinician into the
// conversation (both must agree), pausing, ending, blocking, and telling the clinic about
// behaviour that crossed a line.
import { useCallback, useEffect, useState, type FormEvent } from "react";
import { useTranslation } from "react-i18next";
import type {
  BoundaryCategory,
  ConsentScope,
  ConsentState,
  IdentityCard,
  PartyIntroduction,
} from "peerbridge-web";
import { client } from "../sdk";
import type { Listener } from "../App";
import { useAction } from "../useAction";
import { ErrorText } from "../ErrorText";

const CATEGORIES: BoundaryCategory[] = [
  "dating_request",
  "friendship_beyond_role",
  "contact_outside_app",
  "money_or_favours",
  "disrespect",
  "other",
];

export function ChatOptions(props: {
  intro: PartyIntroduction;
  subscribe: (l: Listener) => () => void;
  onEnded: () => void;
}) {
  const { t } = useTranslation();
  const { error, busy, run, refresh } = useAction();
  const { subscribe } = props;
  const id = props.intro.id;
  const alias = props.intro.counterpart_alias;
  const [intro, setIntro] = useState(props.intro);
  const [state, setState] = useState<ConsentState | null>(null);
  const [card, setCard] = useState<IdentityCard | null>(null);
  const [firstName, setFirstName] = useState("");
  const [phone, setPhone] = useState("");
  const [cardSaved, setCardSaved] = useState(false);
  const [confirm, setConfirm] = useState<"close" | "block" | null>(null);
  const [reporting, setReporting] = useState(false);
  const [category, setCategory] = useState<BoundaryCategory>("other");
  const [note, setNote] = useState("");
  const [reported, setReported] = useState(false);

  const load = useCallback(async () => {
    const c = await client();
    setIntro(await c.introduction(id));
    setState(await c.consentState(id));
    setCard((await c.counterpartCard(id)) ?? null);
  }, [id]);

  useEffect(() => {
    void refresh(load);
    return subscribe((events) => {
      if (
        events.some(
          (e) =>
            (e.type === "introduction_changed" && e.introduction === id) ||
            e.type === "identity_card" ||
            e.type === "identity_card_sent",
        )
      )
        void refresh(load);
    });
  }, [id, load, refresh, subscribe]);

  const consent = (scope: ConsentScope, give: boolean) =>
    run(async () => {
      const c = await client();
      if (give) await c.consent(id, scope);
      else await c.withdrawConsent(id, scope);
      await load();
    });

  const saveCard = async (e: FormEvent) => {
    e.preventDefault();
    const ok = await run(async () => {
      await (
        await client()
      ).setIdentityCard({ first_name: firstName.trim() || null, phone: phone.trim() || null });
      return true;
    });
    if (ok) setCardSaved(true);
  };

  const end = (what: "close" | "block") =>
    run(async () => {
      const c = await client();
      if (what === "close") await c.closeIntroduction(id);
      else await c.blockCounterpart(id);
      props.onEnded();
    });

  const report = async (e: FormEvent) => {
    e.preventDefault();
    const ok = await run(async () => {
      await (await client()).reportBoundary(id, category, note.trim() || null);
      return true;
    });
    if (ok) {
      setReported(true);
      setReporting(false);
      setNote("");
    }
  };

  const ended = intro.state === "ended";

  return (
    <section aria-labelledby="options-title" className="options">
      <h2 id="options-title">{t("options.title")}</h2>
      <ErrorText text={error} />

      <h3>{t("reveal.title")}</h3>
      {card ? (
        <div className="card identity" role="status">
          <p>{t("reveal.theirCard", { alias })}</p>
          {card.first_name && <p>{t("reveal.firstName", { name: card.first_name })}</p>}
          {card.phone && <p>{t("reveal.phone", { phone: card.phone })}</p>}
        </div>
      ) : (
        <>
          <p>{t("reveal.explain", { alias })}</p>
          <form onSubmit={saveCard}>
            <label htmlFor="card-name">{t("reveal.myFirstName")}</label>
            <input
              id="card-name"
              autoComplete="off"
              value={firstName}
              onChange={(e) => setFirstName(e.target.value)}
            />
            <label htmlFor="card-phone">{t("reveal.myPhone")}</label>
            <input
              id="card-phone"
              type="tel"
              autoComplete="off"
              value={phone}
              onChange={(e) => setPhone(e.target.value)}
            />
            <button type="submit" className="secondary" disabled={busy}>
              {t("reveal.saveCard")}
            </button>
            {cardSaved && <p role="status">{t("reveal.cardSaved")}</p>}
          </form>
          {state &&
            (state.my_reveal ? (
              <>
                <p role="status">
                  {state.their_reveal ? t("reveal.both") : t("reveal.waiting", { alias })}
                </p>
                {!state.their_reveal && (
                  <button
                    type="button"
                    className="secondary"
                    onClick={() => consent("reveal", false)}
                  >
                    {t("reveal.withdraw")}
                  </button>
                )}
              </>
            ) : (
              <>
                {state.their_reveal && <p>{t("reveal.theyAgreed", { alias })}</p>}
                <button
                  type="button"
                  disabled={busy || ended}
                  onClick={() => consent("reveal", true)}
                >
                  {t("reveal.agree", { alias })}
                </button>
                {!cardSaved && <p className="muted">{t("reveal.cardFirst")}</p>}
              </>
            ))}
        </>
      )}

      <h3>{t("inviteHp.title")}</h3>
      <p>{t("inviteHp.explain")}</p>
      {state &&
        (state.my_invite_hp ? (
          <>
            <p role="status">
              {state.their_invite_hp ? t("inviteHp.both") : t("inviteHp.waiting", { alias })}
            </p>
            {!state.their_invite_hp && (
              <button
                type="button"
                className="secondary"
                onClick={() => consent("invite_hp", false)}
              >
                {t("inviteHp.withdraw")}
              </button>
            )}
          </>
        ) : (
          <button
            type="button"
            className="secondary"
            disabled={busy || ended}
            onClick={() => consent("invite_hp", true)}
          >
            {t("inviteHp.agree")}
          </button>
        ))}

      <h3>{t("options.pauseTitle")}</h3>
      {ended ? (
        <p>{t("home.ended")}</p>
      ) : (
        <div className="actions">
          {intro.paused_by_me ? (
            <button
              type="button"
              className="secondary"
              onClick={() =>
                run(async () => {
                  await (await client()).resumeIntroduction(id);
                  await load();
                })
              }
            >
              {t("options.resume")}
            </button>
          ) : (
            <button
              type="button"
              className="secondary"
              onClick={() =>
                run(async () => {
                  await (await client()).pauseIntroduction(id);
                  await load();
                })
              }
            >
              {t("options.pause")}
            </button>
          )}
          <button type="button" className="secondary" onClick={() => setConfirm("close")}>
            {t("options.close")}
          </button>
          <button type="button" className="secondary" onClick={() => setConfirm("block")}>
            {t("options.block", { alias })}
          </button>
        </div>
      )}
      {confirm && (
        <div className="card" role="alertdialog" aria-labelledby="confirm-text">
          <p id="confirm-text">
            {confirm === "close" ? t("options.confirmClose") : t("options.confirmBlock", { alias })}
          </p>
          <div className="actions">
            <button type="button" className="urgent" onClick={() => end(confirm)}>
              {confirm === "close" ? t("options.close") : t("options.block", { alias })}
            </button>
            <button type="button" className="secondary" onClick={() => setConfirm(null)}>
              {t("options.cancel")}
            </button>
          </div>
        </div>
      )}

      <h3>{t("report.title")}</h3>
      {reported && <p role="status">{t("report.sent")}</p>}
      {reporting ? (
        <form onSubmit={report}>
          <label htmlFor="report-category">{t("report.category")}</label>
          <select
            id="report-category"
            value={category}
            onChange={(e) => setCategory(e.target.value as BoundaryCategory)}
          >
            {CATEGORIES.map((c) => (
              <option key={c} value={c}>
                {t(`boundary.${c}`)}
              </option>
            ))}
          </select>
          <label htmlFor="report-note">{t("report.note")}</label>
          <textarea
            id="report-note"
            rows={2}
            value={note}
            onChange={(e) => setNote(e.target.value)}
          />
          <p className="muted">{t("report.private", { alias })}</p>
          <button type="submit" disabled={busy}>
            {t("report.send")}
          </button>
        </form>
      ) : (
        <button type="button" className="secondary" onClick={() => setReporting(true)}>
          {t("report.open")}
        </button>
      )}
    </section>
  );
}
