//! Ranking peers for a service user: a pure, deterministic function of the user's needs and
//! the eligible peers' profiles, so it is tested without a database. Eligibility (approved,
//! not paused, below capacity, not declined or blocked, remote rules) is decided before.
//!
//! Points (total 100): language 30, preference 20 (gender 10, age band 10), topics 30,
//! load 10, region 10. Equal scores keep a stable order: fewer active introductions first,
//! then the longest-approved peer, then the peer id.

use std::cmp::Ordering;

use chrono::{DateTime, Utc};
use peerbridge_openapi::introductions::{Criterion, Needs, PeerProfile, ScorePart, Suggestion};

/// An eligible peer with what ranking needs beyond the profile.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub profile: PeerProfile,
    /// From another clinic of the network.
    pub remote: bool,
}

pub fn rank(needs: &Needs, candidates: Vec<Candidate>) -> Vec<Suggestion> {
    let mut scored: Vec<(Suggestion, Option<DateTime<Utc>>)> = candidates
        .into_iter()
        .map(|c| {
            let parts = vec![
                language(needs, &c.profile),
                preference(needs, &c.profile),
                topics(needs, &c.profile),
                load(&c.profile),
                region(needs, &c),
            ];
            let approved_at = c.profile.approved_at;
            (
                Suggestion {
                    rank: 0,
                    peer_id: c.profile.peer_id,
                    clinic_id: c.profile.clinic_id,
                    remote: c.remote,
                    score: parts.iter().map(|p| p.points).sum(),
                    parts,
                    profile: c.profile,
                },
                approved_at,
            )
        })
        .collect();
    scored.sort_by(|(a, a_at), (b, b_at)| {
        b.score
            .cmp(&a.score)
            .then(
                a.profile
                    .active_introductions
                    .cmp(&b.profile.active_introductions),
            )
            .then(earliest_first(a_at, b_at))
            .then(a.peer_id.cmp(&b.peer_id))
    });
    scored
        .into_iter()
        .enumerate()
        .map(|(i, (mut s, _))| {
            s.rank = i as u32 + 1;
            s
        })
        .collect()
}

fn earliest_first(a: &Option<DateTime<Utc>>, b: &Option<DateTime<Utc>>) -> Ordering {
    match (a, b) {
        (Some(a), Some(b)) => a.cmp(b),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

fn part(criterion: Criterion, points: u32, max_points: u32, explanation: String) -> ScorePart {
    ScorePart {
        criterion,
        points,
        max_points,
        explanation,
    }
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "none recorded".into()
    } else {
        items.join(", ")
    }
}

fn language(needs: &Needs, p: &PeerProfile) -> ScorePart {
    if needs.languages.is_empty() {
        return part(
            Criterion::Language,
            30,
            30,
            "no language wanted; any will do".into(),
        );
    }
    let shared: Vec<String> = needs
        .languages
        .iter()
        .filter(|l| p.languages.contains(l))
        .cloned()
        .collect();
    if shared.is_empty() {
        part(
            Criterion::Language,
            0,
            30,
            format!(
                "no shared language: speaks {} (wanted: {})",
                list(&p.languages),
                list(&needs.languages)
            ),
        )
    } else {
        part(
            Criterion::Language,
            30,
            30,
            format!(
                "speaks {} (wanted: {})",
                shared.join(", "),
                list(&needs.languages)
            ),
        )
    }
}

fn preference(needs: &Needs, p: &PeerProfile) -> ScorePart {
    let (gender_points, gender_text) = match (needs.preferred_gender, p.gender) {
        (None, _) => (10, "no gender preference".to_string()),
        (Some(want), Some(is)) if want == is => (10, "gender as preferred".to_string()),
        (Some(_), Some(_)) => (0, "gender not as preferred".to_string()),
        (Some(_), None) => (0, "gender not recorded".to_string()),
    };
    let (age_points, age_text) = match p.age_band {
        _ if needs.preferred_age_bands.is_empty() => (10, "no age preference".to_string()),
        Some(band) if needs.preferred_age_bands.contains(&band) => {
            (10, "age band as preferred".to_string())
        }
        Some(_) => (0, "age band not as preferred".to_string()),
        None => (0, "age band not recorded".to_string()),
    };
    part(
        Criterion::Preference,
        gender_points + age_points,
        20,
        format!("{gender_text}; {age_text}"),
    )
}

fn topics(needs: &Needs, p: &PeerProfile) -> ScorePart {
    if needs.topics.is_empty() {
        return part(Criterion::Topics, 30, 30, "no topics wanted".into());
    }
    let shared: Vec<String> = needs
        .topics
        .iter()
        .filter(|t| p.topics.contains(t))
        .cloned()
        .collect();
    let points = (30 * shared.len() / needs.topics.len()) as u32;
    let text = if shared.is_empty() {
        format!("none of the wanted topics ({})", list(&needs.topics))
    } else {
        format!(
            "shares {} ({} of {} wanted)",
            shared.join(", "),
            shared.len(),
            needs.topics.len()
        )
    };
    part(Criterion::Topics, points, 30, text)
}

fn load(p: &PeerProfile) -> ScorePart {
    let cap = u32::from(p.capacity).max(1);
    let used = p.active_introductions.min(cap);
    let points = 10 * (cap - used) / cap;
    part(
        Criterion::Load,
        points,
        10,
        format!("{used} of {cap} introductions in use"),
    )
}

fn region(needs: &Needs, c: &Candidate) -> ScorePart {
    if c.remote {
        return part(
            Criterion::Region,
            0,
            10,
            "remote: a peer of another clinic in the network (chat only)".into(),
        );
    }
    match (&needs.region, &c.profile.region) {
        (Some(want), Some(is)) if want.trim().eq_ignore_ascii_case(is.trim()) => {
            part(Criterion::Region, 10, 10, format!("same region ({is})"))
        }
        (Some(_), Some(is)) => part(Criterion::Region, 5, 10, format!("another region ({is})")),
        _ => part(
            Criterion::Region,
            5,
            10,
            "same clinic; region not recorded".into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use peerbridge_openapi::introductions::{AgeBand, Gender};
    use uuid::Uuid;

    fn profile(id: u128, langs: &[&str], topics: &[&str]) -> PeerProfile {
        PeerProfile {
            peer_id: Uuid::from_u128(id),
            clinic_id: Uuid::from_u128(1),
            approved: true,
            trained_on: None,
            approved_at: None,
            approved_by: None,
            languages: langs.iter().map(|s| s.to_string()).collect(),
            gender: Some(Gender::Woman),
            age_band: Some(AgeBand::From30To39),
            region: Some("Vestland".into()),
            years_since_diagnosis: Some(10),
            topics: topics.iter().map(|s| s.to_string()).collect(),
            remote_support: false,
            capacity: 2,
            availability: None,
            paused: false,
            active_introductions: 0,
            updated_at: Utc::now(),
        }
    }

    fn needs() -> Needs {
        Needs {
            languages: vec!["nb".into()],
            preferred_gender: Some(Gender::Woman),
            preferred_age_bands: vec![AgeBand::From30To39],
            region: Some("vestland".into()),
            topics: vec!["disclosure".into(), "adherence".into()],
            accepts_remote: true,
        }
    }

    fn local(p: PeerProfile) -> Candidate {
        Candidate {
            profile: p,
            remote: false,
        }
    }

    #[test]
    fn the_best_match_comes_first_with_every_criterion_explained() {
        let good = profile(7, &["nb"], &["disclosure", "adherence"]);
        let mut weak = profile(3, &["en"], &["parenthood"]);
        weak.gender = Some(Gender::Man);
        let ranked = rank(&needs(), vec![local(weak), local(good)]);
        assert_eq!(ranked[0].peer_id, Uuid::from_u128(7));
        assert_eq!(ranked[0].score, 100);
        assert_eq!(ranked[0].rank, 1);
        assert_eq!(ranked[0].parts.len(), 5);
        assert!(ranked[0].parts[0].explanation.contains("speaks nb"));
        assert!(ranked[0].parts[2].explanation.contains("2 of 2"));
        assert!(ranked[1].score < 40, "{:?}", ranked[1].parts);
        assert_eq!(
            ranked[1].score,
            ranked[1].parts.iter().map(|p| p.points).sum::<u32>()
        );
    }

    #[test]
    fn load_and_remote_cost_points() {
        let mut busy = profile(1, &["nb"], &["disclosure", "adherence"]);
        busy.active_introductions = 1;
        let remote = Candidate {
            profile: profile(2, &["nb"], &["disclosure", "adherence"]),
            remote: true,
        };
        let free = profile(3, &["nb"], &["disclosure", "adherence"]);
        let ranked = rank(&needs(), vec![local(busy), remote, local(free)]);
        let order: Vec<u128> = ranked.iter().map(|s| s.peer_id.as_u128()).collect();
        assert_eq!(order, vec![3, 1, 2]);
        assert_eq!(ranked[1].score, 95);
        assert_eq!(ranked[2].score, 90);
        assert!(ranked[2].parts[4].explanation.starts_with("remote"));
    }

    #[test]
    fn equal_scores_keep_a_stable_order_whatever_the_input_order() {
        let mk = |id| profile(id, &["nb"], &["disclosure"]);
        let mut older = mk(9);
        older.approved_at = Some(Utc::now() - chrono::Duration::days(100));
        let mut newer = mk(4);
        newer.approved_at = Some(Utc::now());
        let a = rank(
            &needs(),
            vec![
                local(mk(5)),
                local(newer.clone()),
                local(older.clone()),
                local(mk(2)),
            ],
        );
        let b = rank(
            &needs(),
            vec![local(older), local(mk(2)), local(mk(5)), local(newer)],
        );
        let ids = |r: &[Suggestion]| r.iter().map(|s| s.peer_id.as_u128()).collect::<Vec<_>>();
        assert_eq!(ids(&a), vec![9, 4, 2, 5]);
        assert_eq!(ids(&a), ids(&b));
        assert!(a.iter().all(|s| s.score == a[0].score));
    }

    #[test]
    fn no_needs_recorded_ranks_on_load_and_region() {
        let ranked = rank(&Needs::default(), vec![local(profile(1, &[], &[]))]);
        assert_eq!(ranked[0].score, 30 + 20 + 30 + 10 + 5);
    }
}
