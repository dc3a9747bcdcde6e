// The HP console on a clinic workstation: the escalation queue first, then the work around
// it — invites, people and matching, supervision and debriefs, the consultation report and
// (clinic admins) the clinic's settings. Tabs live in memory like every other screen.
import { useState } from "react";
import { useTranslation } from "react-i18next";
import type { Flag, SessionInfo } from "peerbridge-web";
import type { Listener } from "../../App";
import { Queue } from "../Queue";
import { FlagView } from "../FlagView";
import { Invites } from "./Invites";
import { People } from "./People";
import { Supervision } from "./Supervision";
import { Report } from "./Report";
import { ClinicSettings } from "./ClinicSettings";
import { Notifications } from "../Notifications";
import { MyEscalationKey } from "./EscalationKeys";

export type Tab = "queue" | "invites" | "people" | "supervision" | "report" | "clinic";

export function Console(props: { session: SessionInfo; subscribe: (l: Listener) => () => void }) {
  const { t } = useTranslation();
  const [tab, setTab] = useState<Tab>("queue");
  const [flag, setFlag] = useState<Flag | null>(null);
  // A person chosen on one tab and worked on another (an invite redeemed → matching).
  const [focusUser, setFocusUser] = useState<string | null>(null);
  const clinic = props.session.clinic_id ?? "";
  const admin = props.session.role === "clinic_admin";
  const tabs: Tab[] = ["queue", "invites", "people", "supervision"];
  // The consultation report and the clinic's settings are for clinic admins.
  if (admin) tabs.push("report", "clinic");

  const go = (next: Tab) => {
    setFlag(null);
    setTab(next);
  };

  let body;
  if (tab === "queue" && flag) {
    body = <FlagView flag={flag} onBack={() => setFlag(null)} />;
  } else if (tab === "queue") {
    body = (
      <>
        <Queue subscribe={props.subscribe} onOpen={setFlag} />
        <Notifications />
        <MyEscalationKey />
      </>
    );
  } else if (tab === "invites") {
    body = (
      <Invites
        clinic={clinic}
        onPerson={(user) => {
          setFocusUser(user);
          go("people");
        }}
      />
    );
  } else if (tab === "people") {
    body = <People clinic={clinic} focus={focusUser} />;
  } else if (tab === "supervision") {
    body = <Supervision clinic={clinic} subscribe={props.subscribe} />;
  } else if (tab === "report") {
    body = <Report clinic={clinic} />;
  } else {
    body = <ClinicSettings clinic={clinic} />;
  }

  return (
    <>
      <nav className="tabs" aria-label={t("console.nav")}>
        {tabs.map((x) => (
          <button
            key={x}
            type="button"
            className={x === tab ? "" : "secondary"}
            aria-current={x === tab ? "page" : undefined}
            onClick={() => go(x)}
          >
            {t(`console.${x}`)}
          </button>
        ))}
      </nav>
      {body}
    </>
  );
}
