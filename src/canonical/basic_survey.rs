//! 認定調査票 基本調査 — the 74 items of the 2009 survey form (第1群 身体機能・起居動作 20,
//! 第2群 生活機能 12, 第3群 認知機能 9, 第4群 精神・行動障害 15, 第5群 社会生活への適応 6,
//! 特別な医療 12) and their answer patterns (ChosaAnser 01–17, ../shared/specs/certification.md
//! §1.3, §2). Each item holds the 1-based code of its pattern as written (`"2"`), and the JSON
//! Schema allows only that pattern's codes, with their meanings. Used by `CertificationSurvey` for
//! the current survey and for the previous one. Types only.

use super::declare::{code_list, optional_record};

code_list! {
    /// Answer pattern 01: ない / ある (麻痺, 拘縮, 特別な医療).
    pub enum Presence {
        /// ない
        "1" => Absent,
        /// ある
        "2" => Present,
    }
}

code_list! {
    /// Answer pattern 02: holding on (寝返り, 起き上がり, 歩行, 立ち上がり).
    pub enum WithHolding {
        /// つかまらないでできる
        "1" => WithoutHolding,
        /// 何かにつかまればできる
        "2" => HoldingOn,
        /// できない
        "3" => Unable,
    }
}

code_list! {
    /// Answer pattern 03: 座位保持.
    pub enum Sitting {
        /// できる
        "1" => Able,
        /// 自分で支えれば可（自分の手で支えればできる）
        "2" => OwnSupport,
        /// 支えが必要
        "3" => NeedsSupport,
        /// できない
        "4" => Unable,
    }
}

code_list! {
    /// Answer pattern 04: standing (両足での立位, 片足での立位).
    pub enum Standing {
        /// 支えなしでできる
        "1" => WithoutSupport,
        /// 何か支えがあればできる
        "2" => WithSupport,
        /// できない
        "3" => Unable,
    }
}

code_list! {
    /// Answer pattern 06: 洗身.
    pub enum Washing {
        /// 介助されていない
        "1" => NotAssisted,
        /// 一部介助
        "2" => PartlyAssisted,
        /// 全介助
        "3" => FullyAssisted,
        /// 行っていない
        "4" => NotDone,
    }
}

code_list! {
    /// Answer patterns 07 and 12 (the same codes): つめ切り, 口腔清潔, 洗顔, 整髪, 薬の内服, 金銭の管理.
    pub enum Assistance {
        /// 介助されていない
        "1" => NotAssisted,
        /// 一部介助
        "2" => PartlyAssisted,
        /// 全介助
        "3" => FullyAssisted,
    }
}

code_list! {
    /// Answer pattern 08: 視力.
    pub enum Vision {
        /// 普通（日常生活に支障がない）
        "1" => Normal,
        /// 約1m離れた視力確認表の図が見える
        "2" => SeesAtOneMetre,
        /// 目の前に置いた視力確認表の図が見える
        "3" => SeesUpClose,
        /// ほとんど見えない
        "4" => HardlySees,
        /// 見えているのか判断不能
        "5" => CannotTell,
    }
}

code_list! {
    /// Answer pattern 09: 聴力.
    pub enum Hearing {
        /// 普通
        "1" => Normal,
        /// 普通の声がやっと聞き取れる
        "2" => NormalVoiceBarely,
        /// かなり大きな声なら何とか聞き取れる
        "3" => LoudVoiceOnly,
        /// ほとんど聞こえない
        "4" => HardlyHears,
        /// 聞こえているのか判断不能
        "5" => CannotTell,
    }
}

code_list! {
    /// Answer pattern 10: help with watching (移乗, 移動, 食事摂取, 排尿, 排便, 上衣/ズボン等の着脱,
    /// 買い物, 簡単な調理).
    pub enum AssistanceWithWatching {
        /// 介助されていない
        "1" => NotAssisted,
        /// 見守り等
        "2" => Watched,
        /// 一部介助
        "3" => PartlyAssisted,
        /// 全介助
        "4" => FullyAssisted,
    }
}

code_list! {
    /// Answer pattern 11: えん下.
    pub enum Swallowing {
        /// できる
        "1" => Able,
        /// 見守り等
        "2" => Watched,
        /// できない
        "3" => Unable,
    }
}

code_list! {
    /// Answer pattern 13: 外出頻度.
    pub enum OutingFrequency {
        /// 週1回以上
        "1" => WeeklyOrMore,
        /// 月1回以上
        "2" => MonthlyOrMore,
        /// 月1回未満
        "3" => LessThanMonthly,
    }
}

code_list! {
    /// Answer pattern 14: 意思の伝達.
    pub enum Communicating {
        /// 調査対象者が意思を他者に伝達できる
        "1" => Able,
        /// ときどき伝達できる
        "2" => Sometimes,
        /// ほとんど伝達できない
        "3" => Rarely,
        /// できない
        "4" => Unable,
    }
}

code_list! {
    /// Answer pattern 15: できる / できない (第3群 3-2 … 3-7).
    pub enum Ability {
        /// できる
        "1" => Able,
        /// できない
        "2" => Unable,
    }
}

code_list! {
    /// Answer pattern 16: ない / ときどきある / ある (行動 items).
    pub enum Occurrence {
        /// ない
        "1" => Never,
        /// ときどきある
        "2" => Sometimes,
        /// ある
        "3" => Often,
    }
}

code_list! {
    /// Answer pattern 17: 日常の意思決定.
    pub enum DecisionMaking {
        /// できる（特別な場合でもできる）
        "1" => Able,
        /// 特別な場合を除いてできる
        "2" => ExceptSpecialCases,
        /// 日常的に困難
        "3" => DailyDifficulty,
        /// できない
        "4" => Unable,
    }
}

optional_record! {
    /// 基本調査 — the 74 items, grouped by 群.
    pub struct BasicSurvey {
        /// 第1群 身体機能・起居動作.
        pub group1: Group1,
        /// 第2群 生活機能.
        pub group2: Group2,
        /// 第3群 認知機能.
        pub group3: Group3,
        /// 第4群 精神・行動障害.
        pub group4: Group4,
        /// 第5群 社会生活への適応.
        pub group5: Group5,
        /// 過去14日間にうけた特別な医療.
        pub special_medical: SpecialMedical,
    }
}

optional_record! {
    /// 第1群 身体機能・起居動作 (1-1 … 1-13, 20 items).
    pub struct Group1 {
        /// 1-1 麻痺等の有無.
        pub paralysis: Paralysis,
        /// 1-2 拘縮の有無.
        pub contracture: Contracture,
        /// 1-3 寝返り.
        pub turning_over: WithHolding,
        /// 1-4 起き上がり.
        pub sitting_up: WithHolding,
        /// 1-5 座位保持.
        pub keeping_seated: Sitting,
        /// 1-6 両足での立位（保持）.
        pub standing_on_both_feet: Standing,
        /// 1-7 歩行.
        pub walking: WithHolding,
        /// 1-8 立ち上がり.
        pub standing_up: WithHolding,
        /// 1-9 片足での立位.
        pub standing_on_one_foot: Standing,
        /// 1-10 洗身.
        pub washing_body: Washing,
        /// 1-11 つめ切り.
        pub nail_clipping: Assistance,
        /// 1-12 視力.
        pub vision: Vision,
        /// 1-13 聴力.
        pub hearing: Hearing,
    }
}

optional_record! {
    /// 1-1 麻痺等の有無 (5 items).
    pub struct Paralysis {
        /// 1-1-1 左上肢.
        pub left_arm: Presence,
        /// 1-1-2 右上肢.
        pub right_arm: Presence,
        /// 1-1-3 左下肢.
        pub left_leg: Presence,
        /// 1-1-4 右下肢.
        pub right_leg: Presence,
        /// 1-1-5 その他.
        pub other: Presence,
    }
}

optional_record! {
    /// 1-2 拘縮の有無 (4 items).
    pub struct Contracture {
        /// 1-2-1 肩関節.
        pub shoulder: Presence,
        /// 1-2-2 股関節.
        pub hip: Presence,
        /// 1-2-3 膝関節.
        pub knee: Presence,
        /// 1-2-4 その他.
        pub other: Presence,
    }
}

optional_record! {
    /// 第2群 生活機能 (2-1 … 2-12).
    pub struct Group2 {
        /// 2-1 移乗.
        pub transfer: AssistanceWithWatching,
        /// 2-2 移動.
        pub moving: AssistanceWithWatching,
        /// 2-3 えん下.
        pub swallowing: Swallowing,
        /// 2-4 食事摂取.
        pub eating: AssistanceWithWatching,
        /// 2-5 排尿.
        pub urination: AssistanceWithWatching,
        /// 2-6 排便.
        pub defecation: AssistanceWithWatching,
        /// 2-7 口腔清潔.
        pub oral_hygiene: Assistance,
        /// 2-8 洗顔.
        pub washing_face: Assistance,
        /// 2-9 整髪.
        pub grooming_hair: Assistance,
        /// 2-10 上衣の着脱.
        pub upper_garment: AssistanceWithWatching,
        /// 2-11 ズボン等の着脱.
        pub trousers: AssistanceWithWatching,
        /// 2-12 外出頻度.
        pub outing_frequency: OutingFrequency,
    }
}

optional_record! {
    /// 第3群 認知機能 (3-1 … 3-9).
    pub struct Group3 {
        /// 3-1 意思の伝達.
        pub communicating: Communicating,
        /// 3-2 毎日の日課を理解.
        pub daily_routine: Ability,
        /// 3-3 生年月日や年齢を言う.
        pub states_birth_date: Ability,
        /// 3-4 短期記憶.
        pub short_term_memory: Ability,
        /// 3-5 自分の名前を言う.
        pub states_own_name: Ability,
        /// 3-6 今の季節を理解.
        pub knows_season: Ability,
        /// 3-7 場所の理解.
        pub knows_place: Ability,
        /// 3-8 常時の徘徊.
        pub wandering: Occurrence,
        /// 3-9 外出すると戻れない.
        pub cannot_return: Occurrence,
    }
}

optional_record! {
    /// 第4群 精神・行動障害 (4-1 … 4-15).
    pub struct Group4 {
        /// 4-1 物を盗られたなどと被害的になる.
        pub persecutory: Occurrence,
        /// 4-2 作話.
        pub confabulation: Occurrence,
        /// 4-3 感情が不安定.
        pub emotional_instability: Occurrence,
        /// 4-4 昼夜逆転.
        pub day_night_reversal: Occurrence,
        /// 4-5 同じ話をする.
        pub repeats_stories: Occurrence,
        /// 4-6 大声を出す.
        pub shouting: Occurrence,
        /// 4-7 介護に抵抗.
        pub resists_care: Occurrence,
        /// 4-8 落ち着きなし.
        pub restlessness: Occurrence,
        /// 4-9 一人で出たがる.
        pub wants_to_go_out_alone: Occurrence,
        /// 4-10 収集癖.
        pub hoarding: Occurrence,
        /// 4-11 物や衣類を壊す.
        pub breaks_things: Occurrence,
        /// 4-12 ひどい物忘れ.
        pub severe_forgetfulness: Occurrence,
        /// 4-13 独り言・独り笑い.
        pub talking_to_self: Occurrence,
        /// 4-14 自分勝手に行動する.
        pub selfish_behaviour: Occurrence,
        /// 4-15 話がまとまらない.
        pub incoherent_speech: Occurrence,
    }
}

optional_record! {
    /// 第5群 社会生活への適応 (5-1 … 5-6).
    pub struct Group5 {
        /// 5-1 薬の内服.
        pub medication: Assistance,
        /// 5-2 金銭の管理.
        pub money_management: Assistance,
        /// 5-3 日常の意思決定.
        pub daily_decisions: DecisionMaking,
        /// 5-4 集団への不適応.
        pub group_maladjustment: Occurrence,
        /// 5-5 買い物.
        pub shopping: AssistanceWithWatching,
        /// 5-6 簡単な調理.
        pub simple_cooking: AssistanceWithWatching,
    }
}

optional_record! {
    /// 特別な医療 — received within the past 14 days (12 items; the same list as 主治医意見書 2.).
    pub struct SpecialMedical {
        /// 処置内容: 点滴の管理.
        pub iv_drip: Presence,
        /// 処置内容: 中心静脈栄養.
        pub central_venous_nutrition: Presence,
        /// 処置内容: 透析.
        pub dialysis: Presence,
        /// 処置内容: ストーマの処置.
        pub stoma_care: Presence,
        /// 処置内容: 酸素療法.
        pub oxygen_therapy: Presence,
        /// 処置内容: レスピレーター.
        pub respirator: Presence,
        /// 処置内容: 気管切開の処置.
        pub tracheostomy_care: Presence,
        /// 処置内容: 疼痛の看護.
        pub pain_nursing: Presence,
        /// 処置内容: 経管栄養.
        pub tube_feeding: Presence,
        /// 特別な対応: モニター測定（血圧、心拍、酸素飽和度等）.
        pub monitoring: Presence,
        /// 特別な対応: じょくそうの処置.
        pub pressure_ulcer_care: Presence,
        /// 失禁への対応: カテーテル（コンドームカテーテル、留置カテーテル等）.
        pub catheter: Presence,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_has_74_items() {
        // Every item once, by counting the schema's leaf properties per group.
        let schema = schemars::schema_for!(BasicSurvey).to_value();
        let defs = &schema["$defs"];
        let count = |name: &str| defs[name]["properties"].as_object().unwrap().len();
        let group1 = count("Group1") - 2 + count("Paralysis") + count("Contracture");
        assert_eq!(group1, 20);
        assert_eq!(count("Group2"), 12);
        assert_eq!(count("Group3"), 9);
        assert_eq!(count("Group4"), 15);
        assert_eq!(count("Group5"), 6);
        assert_eq!(count("SpecialMedical"), 12);
    }

    #[test]
    fn an_item_takes_only_its_patterns_codes() {
        // 2-1 移乗 is pattern 10: `2` is 見守り等; 2-3 えん下 is pattern 11 with three codes.
        let g: Group2 = serde_json::from_str(r#"{"transfer":"2","swallowing":"3"}"#).unwrap();
        assert_eq!(g.transfer, Some(AssistanceWithWatching::Watched));
        assert!(serde_json::from_str::<Group2>(r#"{"swallowing":"4"}"#).is_err());
        assert!(serde_json::from_str::<Group2>(r#"{"transfer":"5"}"#).is_err());
    }
}
