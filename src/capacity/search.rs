//! The knee search, apart from running anything: it proposes the next load and is told how
//! each step went. Step up by `factor` from `start` until a step fails, then bisect
//! (geometrically: loads are ratios) between the last pass and the first fail until the
//! first fail is within `resolution` of the last pass.

/// How one step went, as the search sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepOutcome {
    /// The SLO held: the scenario's thresholds, every `--slo`, no MUST violation.
    Pass,
    /// The SLO broke.
    Fail,
    /// The generator fell behind (the run was invalid): says nothing about the server.
    Invalid,
}

/// Where the search ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Ending {
    /// The highest passing load, with the lowest failing one within the resolution above it.
    Knee { pass: f64, fail: f64 },
    /// Every step up to and including `max` passed.
    NoKneeBelowMax { max: f64 },
    /// The first step already failed.
    FailedAtFirst { load: f64 },
    /// A step was invalid: the generator, not the server, was the limit there.
    GeneratorLimit { load: f64 },
}

/// The search's parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plan {
    pub start: f64,
    pub factor: f64,
    pub max: f64,
    /// The gap at which bisection stops, relative to the last pass (0.05 = 5 %).
    pub resolution: f64,
    /// Loads are whole numbers (clients).
    pub whole: bool,
}

impl Plan {
    /// Checks the parameters; the error says which is wrong.
    pub fn check(&self) -> Result<(), String> {
        if !(self.start.is_finite() && self.start > 0.0) {
            return Err(format!("--start must be above 0, not {}", self.start));
        }
        if !(self.factor.is_finite() && self.factor > 1.0) {
            return Err(format!("--factor must be above 1, not {}", self.factor));
        }
        if !(self.max.is_finite() && self.max >= self.start) {
            return Err(format!(
                "--max ({}) must be at least --start ({})",
                self.max, self.start
            ));
        }
        if !(self.resolution > 0.0 && self.resolution < 1.0) {
            return Err(format!(
                "--resolution must be between 0% and 100%, not {}%",
                self.resolution * 100.0
            ));
        }
        if self.whole && self.start < 1.0 {
            return Err("--start must be at least 1 client".into());
        }
        Ok(())
    }

    fn round(&self, load: f64) -> f64 {
        if self.whole {
            load.round().max(1.0)
        } else {
            // Three significant decimals are plenty for a multiplier, and keep names short.
            (load * 1000.0).round() / 1000.0
        }
    }
}

/// The search's state: what passed and failed so far.
#[derive(Debug, Clone)]
pub struct Search {
    plan: Plan,
    last_pass: Option<f64>,
    first_fail: Option<f64>,
    steps: usize,
    ending: Option<Ending>,
}

impl Search {
    pub fn new(plan: Plan) -> Search {
        Search {
            plan,
            last_pass: None,
            first_fail: None,
            steps: 0,
            ending: None,
        }
    }

    /// The next load to run, or `None` when the search has ended (see [`Search::ending`]).
    pub fn next(&mut self) -> Option<f64> {
        if self.ending.is_some() {
            return None;
        }
        let p = &self.plan;
        let next = match (self.last_pass, self.first_fail) {
            (None, None) => p.round(p.start),
            (None, Some(load)) => {
                self.ending = Some(Ending::FailedAtFirst { load });
                return None;
            }
            (Some(pass), None) => {
                if pass >= p.max {
                    self.ending = Some(Ending::NoKneeBelowMax { max: p.max });
                    return None;
                }
                p.round(pass * p.factor).min(p.max)
            }
            (Some(pass), Some(fail)) => {
                let mid = p.round((pass * fail).sqrt());
                if fail <= pass * (1.0 + p.resolution) || mid <= pass || mid >= fail {
                    self.ending = Some(Ending::Knee { pass, fail });
                    return None;
                }
                mid
            }
        };
        Some(next)
    }

    /// Records how the step at `load` went.
    pub fn record(&mut self, load: f64, outcome: StepOutcome) {
        self.steps += 1;
        match outcome {
            StepOutcome::Pass => {
                self.last_pass = Some(self.last_pass.map_or(load, |p| p.max(load)));
            }
            StepOutcome::Fail => {
                self.first_fail = Some(self.first_fail.map_or(load, |f| f.min(load)));
            }
            StepOutcome::Invalid => self.ending = Some(Ending::GeneratorLimit { load }),
        }
    }

    /// Where the search ended; `None` while it goes on (or when it was stopped early).
    pub fn ending(&self) -> Option<Ending> {
        self.ending
    }

    /// The highest load that passed so far.
    pub fn last_pass(&self) -> Option<f64> {
        self.last_pass
    }

    /// The lowest load that failed so far.
    pub fn first_fail(&self) -> Option<f64> {
        self.first_fail
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(start: f64, factor: f64, max: f64, resolution: f64, whole: bool) -> Plan {
        Plan {
            start,
            factor,
            max,
            resolution,
            whole,
        }
    }

    /// Runs the search against a server whose SLO holds up to `knee` (inclusive); `invalid_from`
    /// makes every step at or above it invalid. Returns the loads tried and the ending.
    fn against(p: Plan, knee: f64, invalid_from: f64) -> (Vec<f64>, Option<Ending>) {
        let mut s = Search::new(p);
        let mut tried = Vec::new();
        while let Some(load) = s.next() {
            assert!(tried.len() < 100, "the search does not end: {tried:?}");
            tried.push(load);
            let outcome = if load >= invalid_from {
                StepOutcome::Invalid
            } else if load <= knee {
                StepOutcome::Pass
            } else {
                StepOutcome::Fail
            };
            s.record(load, outcome);
        }
        (tried, s.ending())
    }

    #[test]
    fn steps_up_by_the_factor_then_bisects_to_the_resolution() {
        let (tried, ending) = against(plan(1.0, 2.0, 16.0, 0.05, false), 3.125, f64::MAX);
        assert_eq!(&tried[..3], &[1.0, 2.0, 4.0]);
        let Some(Ending::Knee { pass, fail }) = ending else {
            panic!("{ending:?}")
        };
        assert!(pass <= 3.125 && fail > 3.125, "{pass} {fail}");
        assert!(fail <= pass * 1.05, "{pass} {fail}");
        // Bisection halves the gap's logarithm each step: 2 -> 4 to 5 % in 4 steps.
        assert_eq!(tried.len(), 3 + 4, "{tried:?}");
    }

    #[test]
    fn a_first_step_that_fails_ends_the_search() {
        let (tried, ending) = against(plan(2.0, 2.0, 16.0, 0.05, false), 1.0, f64::MAX);
        assert_eq!(tried, vec![2.0]);
        assert_eq!(ending, Some(Ending::FailedAtFirst { load: 2.0 }));
    }

    #[test]
    fn every_step_passing_ends_at_max_without_a_knee() {
        let (tried, ending) = against(plan(1.0, 3.0, 20.0, 0.05, false), 100.0, f64::MAX);
        // The last step is max itself, not past it.
        assert_eq!(tried, vec![1.0, 3.0, 9.0, 20.0]);
        assert_eq!(ending, Some(Ending::NoKneeBelowMax { max: 20.0 }));
    }

    #[test]
    fn an_invalid_step_stops_the_search_and_blames_the_generator() {
        let (tried, ending) = against(plan(1.0, 2.0, 64.0, 0.05, false), 100.0, 8.0);
        assert_eq!(tried, vec![1.0, 2.0, 4.0, 8.0]);
        assert_eq!(ending, Some(Ending::GeneratorLimit { load: 8.0 }));
        // Also while bisecting.
        let (_, ending) = against(plan(1.0, 2.0, 64.0, 0.05, false), 5.0, 6.0);
        assert!(
            matches!(ending, Some(Ending::GeneratorLimit { .. })),
            "{ending:?}"
        );
    }

    #[test]
    fn whole_loads_stop_when_no_whole_load_lies_between() {
        let (tried, ending) = against(plan(10.0, 2.0, 1000.0, 0.01, true), 47.0, f64::MAX);
        assert!(tried.iter().all(|l| l.fract() == 0.0), "{tried:?}");
        assert_eq!(
            ending,
            Some(Ending::Knee {
                pass: 47.0,
                fail: 48.0
            })
        );
    }

    #[test]
    fn bad_parameters_are_refused() {
        assert!(plan(1.0, 2.0, 16.0, 0.05, false).check().is_ok());
        assert!(plan(0.0, 2.0, 16.0, 0.05, false).check().is_err());
        assert!(plan(1.0, 1.0, 16.0, 0.05, false).check().is_err());
        assert!(plan(4.0, 2.0, 2.0, 0.05, false).check().is_err());
        assert!(plan(1.0, 2.0, 16.0, 0.0, false).check().is_err());
        assert!(plan(1.0, 2.0, 16.0, 1.0, false).check().is_err());
        assert!(plan(0.5, 2.0, 16.0, 0.05, true).check().is_err());
    }
}
