// Turning notifications on or off. They never say who wrote or what: only "New activity".
import { useEffect, useState } from "react";
import { useTranslation } from "react-i18next";
import { disablePush, enablePush, pushState, type PushState } from "../push";
import { useAction } from "../useAction";
import { ErrorText } from "../ErrorText";

export function Notifications() {
  const { t } = useTranslation();
  const { error, busy, run } = useAction();
  const [state, setState] = useState<PushState | null>(null);

  useEffect(() => {
    void run(async () => setState(await pushState()));
  }, [run]);

  if (state === null || state === "unsupported") return null;
  return (
    <section aria-labelledby="push-title" className="card">
      <h2 id="push-title">{t("push.title")}</h2>
      <p>{t("push.explain")}</p>
      {state === "denied" ? (
        <p>{t("push.denied")}</p>
      ) : state === "on" ? (
        <>
          <p role="status">{t("push.on")}</p>
          <button
            type="button"
            className="secondary"
            disabled={busy}
            onClick={() => run(async () => setState(await disablePush()))}
          >
            {t("push.turnOff")}
          </button>
        </>
      ) : (
        <button
          type="button"
          disabled={busy}
          onClick={() => run(async () => setState(await enablePush()))}
        >
          {t("push.turnOn")}
        </button>
      )}
      <ErrorText text={error} />
    </section>
  );
}
