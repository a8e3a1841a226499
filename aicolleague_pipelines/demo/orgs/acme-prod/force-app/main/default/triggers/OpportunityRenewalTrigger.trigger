trigger OpportunityRenewalTrigger on Opportunity (after insert, after update) {
    OpportunityHelper.createRenewals(Trigger.new);
    OpportunityHelper.syncProgramBudgets(Trigger.new);
}
