DROP TABLE schedule_entry;
