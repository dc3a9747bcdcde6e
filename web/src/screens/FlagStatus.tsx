// Where a flag this person raised stands, in plain words, kept up to date: received and not
// yet confirmed, taken on by a clinician, followed up. It never says a clinician was
// alerted when nobody could be, and while the server cannot be reached it says the flag
// waits on this phone (the SDK delivers it when the connection is back).
import { useCallback, useEffect, useState } from "react";
import { useTranslation } from "react-i18next";
import type { Event, FlagProgress } from "peerbridge-web";
import { client } from "../sdk";

type Listener = (events: Event[]) => void;

export function FlagStatus(props: {
  /** The stored flag's id; `null` while it is queued on this device. */
  flag: string | null;
  conversation: string;
  subscribe: (l: Listener) => () => void;
}) {
  const { t, i18n } = useTranslation();
  const [flag, setFlag] = useState<string | null>(props.flag);
  const [progress, setProgress] = useState<FlagProgress | null>(null);

  const load = useCallback(async (id: string) => {
    try {
      setProgress(await (await client()).flagProgress(id));
    } catch {
      // Shown again at the next change; the last known state stays on screen.
    }
  }, []);

  const { subscribe, conversation } = props;
  useEffect(() => {
    if (flag) void load(flag);
    return subscribe((events) => {
      for (const e of events) {
        if (e.type === "flag_raised" && e.conversation === conversation && !flag) {
          setFlag(e.flag);
          void load(e.flag);
        }
        if (e.type === "flag_changed" && e.flag === flag) void load(e.flag);
      }
    });
  }, [flag, load, subscribe, conversation]);

  let text: string;
  if (!flag) text = t("flagstatus.queued");
  else if (!progress) text = t("flagstatus.sending");
  else if (progress.status === "resolved") text = t("flagstatus.resolved");
  else if (progress.status === "acknowledged") text = t("flagstatus.acknowledged");
  else text = progress.asked ? t("flagstatus.received") : t("flagstatus.receivedNobody");
  const contact = progress?.status === "open" ? progress.out_of_hours : null;

  return (
    <div role="status" aria-live="polite" lang={i18n.language}>
      <p>{text}</p>
      {contact && (
        <p>
          {t("flagstatus.outOfHours")}{" "}
          <a href={`tel:${contact.phone.replace(/[^0-9+]/g, "")}`}>
            {contact.label}: {contact.phone}
          </a>
        </p>
      )}
    </div>
  );
}
