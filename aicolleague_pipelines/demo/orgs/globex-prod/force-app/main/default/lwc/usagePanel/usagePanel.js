import { LightningElement, api, wire } from 'lwc';
import { getRecord, getFieldValue } from 'lightning/uiRecordApi';
import getUsage from '@salesforce/apex/UsageController.getUsage';
import MRR_FIELD from '@salesforce/schema/Subscription__c.MRR__c';
import PLAN_FIELD from '@salesforce/schema/Subscription__c.Plan__c';
import INDUSTRY_FIELD from '@salesforce/schema/Subscription__c.Account__r.Industry';

export default class UsagePanel extends LightningElement {
    @api recordId;
    usage = [];

    @wire(getRecord, { recordId: '$recordId', fields: [MRR_FIELD, PLAN_FIELD, INDUSTRY_FIELD] })
    subscription;

    @wire(getUsage, { subscriptionId: '$recordId' })
    wiredUsage({ data }) {
        this.usage = data ? data.map((row) => ({ metric: row.metric, total: row.total })) : [];
    }

    get mrr() {
        return getFieldValue(this.subscription.data, MRR_FIELD);
    }

    get plan() {
        return getFieldValue(this.subscription.data, PLAN_FIELD);
    }
}
