-- Which LRS operations count as what: the one definition, used by profile_day_events.sql
-- (one flag per event) and rank_evidence.sql (example events of a kind). Run on a
-- connection (pipeline.profile.define_macros) before those queries.
CREATE OR REPLACE TEMP MACRO lrs_is_demographic(op) AS op = 'learnerByDemographics';
CREATE OR REPLACE TEMP MACRO lrs_is_verify(op) AS op = 'verifyLearner';
CREATE OR REPLACE TEMP MACRO lrs_is_search(op) AS op IN ('learnerByDemographics', 'verifyLearner');
CREATE OR REPLACE TEMP MACRO lrs_is_register(op) AS op IN (
    'registerSingleLearner', 'updateSingleLearner', 'UpdateLearnerSubsetFields',
    'submitBatchRegistration'
);
CREATE OR REPLACE TEMP MACRO lrs_is_record_read(op) AS op = 'GetLearnerLearningEvents';
CREATE OR REPLACE TEMP MACRO lrs_is_uln_lookup(op) AS op IN ('learnerByULN', 'LearnerByUln');
CREATE OR REPLACE TEMP MACRO lrs_is_batch(op) AS op IN (
    'submitBatchRegistration', 'getBatchRegistrationOutput', 'submitVerifyBatch',
    'getVerifyBatchOutput'
);
