import { LightningElement, api, wire } from 'lwc';
import { getRecord, getFieldValue } from 'lightning/uiRecordApi';
import getPrograms from '@salesforce/apex/ProgramController.getPrograms';
import INDUSTRY_FIELD from '@salesforce/schema/Account.Industry';
import TIER_FIELD from '@salesforce/schema/Account.Customer_Tier__c';
import PROGRAM_STATUS_FIELD from '@salesforce/schema/Program__c.Status__c';

const COLUMNS = [
    { label: 'Program', fieldName: 'Name' },
    { label: 'Status', fieldName: PROGRAM_STATUS_FIELD.fieldApiName },
    { label: 'Budget', fieldName: 'Budget__c', type: 'currency' },
    { label: 'Hours delivered', fieldName: 'Total_Delivered_Hours__c', type: 'number' }
];

export default class ProgramSummary extends LightningElement {
    @api recordId;
    @api title = 'Programs';
    columns = COLUMNS;
    programs = [];
    error;

    @wire(getRecord, { recordId: '$recordId', fields: [INDUSTRY_FIELD, TIER_FIELD] })
    account;

    @wire(getPrograms, { accountId: '$recordId' })
    wiredPrograms({ data, error }) {
        if (data) {
            this.programs = data;
            this.error = undefined;
        } else if (error) {
            this.error = error;
            this.programs = [];
        }
    }

    get industry() {
        return getFieldValue(this.account.data, INDUSTRY_FIELD);
    }

    get tier() {
        return getFieldValue(this.account.data, TIER_FIELD);
    }

    get hasPrograms() {
        return this.programs.length > 0;
    }
}
