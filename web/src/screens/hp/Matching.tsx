// Matching one service user: their needs (in the peer profiles' vocabulary), the ranked
// suggestions with each criterion's reason, and a proposal under aliases. Each side reads
// only the short description written for them; neither learns who the other is.
import { useEffect, useState, type FormEvent } from "react";
import { useTranslation } from "react-i18next";
import type { Suggestion, Topic } from "peerbridge-web";
import { client } from "../../sdk";
import { useAction } from "../../useAction";
import { ErrorText } from "../../ErrorText";
import { SPOKEN } from "./PeerEditor";
import { Choices } from "../../Choices";

export function Matching(props: { clinic: string; user: string }) {
  const { t } = useTranslation();
  const { error, busy, run } = useAction();
  const [languages, setLanguages] = useState<string[]>(["nb"]);
  const [topics, setTopics] = useState<string[]>([]);
  const [allTopics, setAllTopics] = useState<Topic[]>([]);
  const [remote, setRemote] = useState(false);
  const [suggestions, setSuggestions] = useState<Suggestion[] | null>(null);
  const [chosen, setChosen] = useState<Suggestion | null>(null);
  const [forUser, setForUser] = useState("");
  const [forPeer, setForPeer] = useState("");
  const [proposed, setProposed] = useState(false);
  const id = props.user.slice(0, 8);

  useEffect(() => {
    void run(async () => {
      const c = await client();
      setAllTopics(await c.topics(props.clinic));
      try {
        const n = await c.needs(props.clinic, props.user);
        setLanguages(n.languages ?? []);
        setTopics(n.topics ?? []);
        setRemote(n.accepts_remote ?? false);
      } catch (e) {
        // No needs recorded yet: the form starts from the defaults.
        if ((e as { code?: string })?.code !== "not_found") throw e;
      }
    });
  }, [props.clinic, props.user, run]);

  const find = async (e: FormEvent) => {
    e.preventDefault();
    setChosen(null);
    await run(async () => {
      const c = await client();
      await c.setNeeds(props.clinic, props.user, {
        languages,
        topics,
        accepts_remote: remote,
      });
      setSuggestions(await c.suggestions(props.clinic, props.user));
    });
  };

  const propose = async (e: FormEvent) => {
    e.preventDefault();
    if (!chosen) return;
    const done = await run(async () =>
      (await client()).proposeIntroduction(props.clinic, {
        client_id: crypto.randomUUID(),
        service_user_id: props.user,
        peer_id: chosen.peer_id,
        blurb_for_service_user: forUser.trim(),
        blurb_for_peer: forPeer.trim(),
      }),
    );
    if (done) setProposed(true);
  };

  if (proposed) return <p role="status">{t("match.proposed")}</p>;

  return (
    <div className="editor">
      <form onSubmit={find}>
        <Choices
          legend={t("match.languages")}
          options={SPOKEN.map((l) => ({ key: l, label: t(`spoken.${l}`) }))}
          chosen={languages}
          onChange={setLanguages}
        />
        {allTopics.length > 0 && (
          <Choices
            legend={t("match.topics")}
            options={allTopics.map((x) => ({ key: x.key, label: x.label }))}
            chosen={topics}
            onChange={setTopics}
          />
        )}
        <label className="inline">
          <input type="checkbox" checked={remote} onChange={() => setRemote(!remote)} />
          {t("match.remote")}
        </label>
        <button type="submit" disabled={busy}>
          {t("match.find")}
        </button>
      </form>
      <ErrorText text={error} />
      {suggestions !== null &&
        (suggestions.length === 0 ? (
          <p>{t("match.none")}</p>
        ) : (
          <ol className="cards" aria-label={t("match.suggestions")}>
            {suggestions.map((s) => (
              <li key={s.peer_id} className="card">
                <p>
                  <strong>
                    {t("match.rank", {
                      rank: s.rank,
                      score: s.score,
                      max: s.parts.reduce((a, p) => a + p.max_points, 0),
                    })}
                  </strong>
                  {s.remote && <span className="muted"> {t("match.isRemote")}</span>}
                </p>
                <ul>
                  {s.parts.map((p) => (
                    <li key={p.criterion}>
                      {t(`criterion.${p.criterion}`)}: {p.explanation} ({p.points}/{p.max_points})
                    </li>
                  ))}
                </ul>
                {s.profile.availability && (
                  <p className="muted">
                    {t("match.availability", { text: s.profile.availability })}
                  </p>
                )}
                {chosen?.peer_id !== s.peer_id && (
                  <button type="button" className="secondary" onClick={() => setChosen(s)}>
                    {t("match.choose", { rank: s.rank })}
                  </button>
                )}
                {chosen?.peer_id === s.peer_id && (
                  <form onSubmit={propose}>
                    <label htmlFor={`for-user-${id}`}>{t("match.blurbForUser")}</label>
                    <textarea
                      id={`for-user-${id}`}
                      rows={2}
                      maxLength={500}
                      required
                      value={forUser}
                      onChange={(e) => setForUser(e.target.value)}
                    />
                    <label htmlFor={`for-peer-${id}`}>{t("match.blurbForPeer")}</label>
                    <textarea
                      id={`for-peer-${id}`}
                      rows={2}
                      maxLength={500}
                      required
                      value={forPeer}
                      onChange={(e) => setForPeer(e.target.value)}
                    />
                    <p className="muted">{t("match.noIdentity")}</p>
                    <button type="submit" disabled={busy}>
                      {t("match.propose")}
                    </button>
                  </form>
                )}
              </li>
            ))}
          </ol>
        ))}
    </div>
  );
}
