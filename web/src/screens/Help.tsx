// "I need help now": the emergency number and the clinic's crisis resources, always one tap
// away, and (inside a conversation) a flag that asks the clinic to make contact.
import { useEffect, useRef, useState } from "react";
import { useTranslation } from "react-i18next";
import type { CrisisResource, CrisisResourceList, Event } from "peerbridge-web";
import { client, errorKey, isOffline } from "../sdk";
import { ErrorText } from "../ErrorText";
import { FlagStatus } from "./FlagStatus";

export function Help(props: {
  conversation: string | null;
  subscribe: (l: (events: Event[]) => void) => () => void;
  onClose: () => void;
}) {
  const { t, i18n } = useTranslation();
  const [list, setList] = useState<CrisisResourceList | null>(null);
  // The stored request's id, or null while it waits on this device for a connection.
  const [told, setTold] = useState<{ flag: string | null } | null>(null);
  const [error, setError] = useState<string | null>(null);
  const heading = useRef<HTMLHeadingElement>(null);

  useEffect(() => {
    heading.current?.focus();
    const locale = i18n.language as CrisisResourceList["locale"];
    // Only the answer for the language now chosen counts.
    let current = true;
    client()
      .then((c) => c.crisisResources(locale))
      .then((l) => current && setList(l))
      .catch(() => current && setList(null));
    return () => {
      current = false;
    };
  }, [i18n.language]);

  const tell = async () => {
    if (!props.conversation) return;
    try {
      const receipt = await (await client()).helpNow(props.conversation, "", []);
      setTold({ flag: receipt.id });
    } catch (e) {
      if (isOffline(e)) setTold({ flag: null });
      else setError(t(errorKey(e)));
    }
  };

  return (
    <section aria-labelledby="help-title" className="help-panel">
      <h1 id="help-title" ref={heading} tabIndex={-1}>
        {t("help.title")}
      </h1>
      <p className="emergency">
        <a href="tel:113">{t("help.emergency")}</a>
      </p>
      {list && (
        <>
          <p>{t("help.resources")}</p>
          <CrisisNumbers resources={list.resources} />
        </>
      )}
      {props.conversation &&
        (told ? (
          <FlagStatus
            flag={told.flag}
            conversation={props.conversation}
            subscribe={props.subscribe}
          />
        ) : (
          <button type="button" className="urgent" onClick={tell}>
            {t("help.tellClinic")}
          </button>
        ))}
      <ErrorText text={error} />
      <button type="button" className="secondary" onClick={props.onClose}>
        {t("help.close")}
      </button>
    </section>
  );
}

/** The crisis numbers as links a phone dials with one tap. */
export function CrisisNumbers(props: { resources: CrisisResource[] }) {
  return (
    <ul className="plain">
      {props.resources.map((r) => (
        <li key={r.phone + r.label}>
          <a href={`tel:${r.phone.replace(/[^0-9+]/g, "")}`}>
            {r.label}: {r.phone}
          </a>
        </li>
      ))}
    </ul>
  );
}
