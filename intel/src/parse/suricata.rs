//! Suricata IP reputation: `ip,category_id,score` lines (IPs or CIDRs), with a categories file of
//! `id,short_name,description` lines giving each id its meaning.

use super::csv_records::for_each_record;
use super::lines::for_each_line;
use super::{Collector, ListOptions, Meta};
use crate::category::{Category, ListKind};
use crate::indicator::{LineIssue, LineProblem};
use std::collections::BTreeMap;

/// Highest score Suricata accepts in a reputation file.
const MAX_SCORE: u8 = 127;

/// One reputation category.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuricataCategory {
    /// The short name, e.g. `CnC`.
    pub short_name: String,
    /// The description, e.g. `ET CNC Shadowserver Reported CnC Server`.
    pub description: String,
}

/// The categories a Suricata categories file defines, by id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SuricataCategories {
    /// Categories by id.
    pub by_id: BTreeMap<u32, SuricataCategory>,
}

impl SuricataCategories {
    /// Parses a categories file (`id,short_name,description`), returning the categories and the
    /// lines it could not read.
    pub fn parse(file: &str, bytes: &[u8]) -> (SuricataCategories, Vec<LineIssue>) {
        let opts = ListOptions::new(file, ListKind::Trusted);
        let mut out = Collector::new(file, &opts);
        let mut cats = SuricataCategories::default();
        for_each_line(bytes, &mut out, |line, text, out| {
            let text = text.trim();
            if text.is_empty() || text.starts_with('#') {
                return;
            }
            let mut parts = text.splitn(3, ',').map(str::trim);
            let (id, short, desc) = (parts.next().unwrap_or(""), parts.next(), parts.next());
            let Ok(id) = id.parse::<u32>() else {
                let value = super::cut(id);
                out.reject(
                    line,
                    LineProblem::BadNumber {
                        field: "id",
                        value,
                        expected: "an integer id",
                    },
                );
                return;
            };
            let Some(short) = short.filter(|s| !s.is_empty()) else {
                out.reject(
                    line,
                    LineProblem::MissingField {
                        field: "short_name",
                    },
                );
                return;
            };
            let category = SuricataCategory {
                short_name: short.to_owned(),
                description: desc.unwrap_or("").to_owned(),
            };
            cats.by_id.insert(id, category);
        });
        (cats, out.finish().rejected)
    }
}

pub(crate) fn parse(bytes: &[u8], out: &mut Collector<'_>) {
    let cats = out.opts().suricata_categories.clone();
    for_each_record(bytes, out, |line, rec, out| {
        let value = rec.get(0).unwrap_or("");
        if value.is_empty() {
            return;
        }
        let cat = rec.get(1).unwrap_or("");
        let Ok(id) = cat.parse::<u32>() else {
            let value = super::cut(cat);
            out.reject(
                line,
                LineProblem::BadNumber {
                    field: "category_id",
                    value,
                    expected: "an integer id",
                },
            );
            return;
        };
        let score = rec.get(2).unwrap_or("");
        if score.parse::<u8>().map_or(true, |s| s > MAX_SCORE) {
            let value = super::cut(score);
            out.reject(
                line,
                LineProblem::BadNumber {
                    field: "score",
                    value,
                    expected: "an integer 0..=127",
                },
            );
            return;
        }
        let (description, category) = match &cats {
            Some(c) => match c.by_id.get(&id) {
                Some(sc) => {
                    let text = format!("{} ({}), score {score}", sc.description, sc.short_name);
                    let guess = Category::guess_from_text(&sc.description)
                        .or_else(|| Category::guess_from_text(&sc.short_name));
                    (text, guess)
                }
                None => {
                    out.reject(line, LineProblem::UnknownCategory { id });
                    return;
                }
            },
            None => (format!("category {id}, score {score}"), None),
        };
        out.add_address(
            line,
            value,
            Meta {
                category,
                ..Meta::described(&description)
            },
        );
    });
}
