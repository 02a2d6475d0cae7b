// Package models holds the bun models of the PT domain (DESIGN §5); the job
// repository's models live with the engine, in package batch. The SQL in
// migrations/ is the source of truth; these structs mirror it column for
// column.
package models

import (
	"encoding/json"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"
)

// Pass statuses.
const (
	PassReady      = "READY"
	PassProgressed = "PROGRESSED"
	PassExpired    = "EXPIRED"
)

// Bulk pass statuses.
const (
	BulkPassReady     = "READY"
	BulkPassCompleted = "COMPLETED"
)

// Booking statuses.
const (
	BookingReady     = "READY"
	BookingCompleted = "COMPLETED"
	BookingCancelled = "CANCELLED"
)

// User roles and statuses.
const (
	RoleUser     = "user"
	RoleAdmin    = "admin"
	UserActive   = "ACTIVE"
	UserInactive = "INACTIVE"
)

// Notification events.
const (
	EventBeforeClass  = "BEFORE_CLASS"
	EventBeforeExpiry = "BEFORE_EXPIRY"
	// EventClassCancelled tells a booked member their class was cancelled.
	EventClassCancelled = "CLASS_CANCELLED"
)

// Timestamps are the created_at/modified_at pair every domain table has.
type Timestamps struct {
	CreatedAt  time.Time `bun:"created_at,nullzero,notnull,default:current_timestamp" json:"created_at"`
	ModifiedAt time.Time `bun:"modified_at,nullzero,notnull,default:current_timestamp" json:"modified_at"`
}

// Package is a product: a number of uses (nil = unlimited) over a period (nil = no end).
type Package struct {
	bun.BaseModel `bun:"table:package"`

	ID         int64  `bun:"id,pk,autoincrement" json:"id"`
	Name       string `bun:"name,notnull" json:"name"`
	Count      *int   `bun:"count" json:"count"`
	PeriodDays *int   `bun:"period_days" json:"period_days"`
	// RetiredAt, once set, stops new grants of the package; the passes
	// already granted keep working.
	RetiredAt *time.Time `bun:"retired_at" json:"retired_at"`
	Timestamps
}

// User is a gym member or an admin.
type User struct {
	bun.BaseModel `bun:"table:users"`

	ID           int64  `bun:"id,pk,autoincrement" json:"id"`
	Name         string `bun:"name,notnull" json:"name"`
	Email        string `bun:"email,notnull" json:"email"`
	Phone        string `bun:"phone,notnull" json:"phone"`
	PasswordHash string `bun:"password_hash,notnull" json:"-"`
	Role         string `bun:"role,notnull" json:"role"`
	Status       string `bun:"status,notnull" json:"status"`
	// SessionEpoch is part of every session cookie of the user; bumping it
	// (logout, a password, role or status change) ends them all.
	SessionEpoch int `bun:"session_epoch,notnull" json:"-"`
	Timestamps
}

// UserGroup is a named set of users that a bulk pass grants to.
type UserGroup struct {
	bun.BaseModel `bun:"table:user_group"`

	ID          int64  `bun:"id,pk,autoincrement" json:"id"`
	Name        string `bun:"name,notnull" json:"name"`
	Description string `bun:"description,notnull" json:"description"`
	Timestamps
}

// UserGroupMapping puts a user in a group.
type UserGroupMapping struct {
	bun.BaseModel `bun:"table:user_group_mapping"`

	UserGroupID int64 `bun:"user_group_id,pk" json:"user_group_id"`
	UserID      int64 `bun:"user_id,pk" json:"user_id"`
	Timestamps
}

// BulkPass grants a package to every user of a group from StartedAt on.
type BulkPass struct {
	bun.BaseModel `bun:"table:bulk_pass"`

	ID          int64      `bun:"id,pk,autoincrement" json:"id"`
	PackageID   int64      `bun:"package_id,notnull" json:"package_id"`
	UserGroupID int64      `bun:"user_group_id,notnull" json:"user_group_id"`
	Status      string     `bun:"status,notnull" json:"status"`
	Count       *int       `bun:"count" json:"count"`
	StartedAt   time.Time  `bun:"started_at,notnull" json:"started_at"`
	EndedAt     *time.Time `bun:"ended_at" json:"ended_at"`
	Timestamps
}

// Pass is one user's right to book classes: READY → PROGRESSED → EXPIRED.
type Pass struct {
	bun.BaseModel `bun:"table:pass"`

	ID             int64      `bun:"id,pk,autoincrement" json:"id"`
	PackageID      int64      `bun:"package_id,notnull" json:"package_id"`
	UserID         int64      `bun:"user_id,notnull" json:"user_id"`
	BulkPassID     *int64     `bun:"bulk_pass_id" json:"bulk_pass_id"`
	Status         string     `bun:"status,notnull" json:"status"`
	RemainingCount *int       `bun:"remaining_count" json:"remaining_count"`
	StartedAt      time.Time  `bun:"started_at,notnull" json:"started_at"`
	EndedAt        *time.Time `bun:"ended_at" json:"ended_at"`
	ExpiredAt      *time.Time `bun:"expired_at" json:"expired_at"`
	Timestamps

	Package *Package `bun:"rel:belongs-to,join:package_id=id" json:"package,omitempty"`
}

// Booking is a class a user booked with a pass.
type Booking struct {
	bun.BaseModel `bun:"table:booking"`

	ID          int64      `bun:"id,pk,autoincrement" json:"id"`
	PassID      int64      `bun:"pass_id,notnull" json:"pass_id"`
	UserID      int64      `bun:"user_id,notnull" json:"user_id"`
	Status      string     `bun:"status,notnull" json:"status"`
	UsedPass    bool       `bun:"used_pass,notnull" json:"used_pass"`
	Attended    bool       `bun:"attended,notnull" json:"attended"`
	StartedAt   time.Time  `bun:"started_at,notnull" json:"started_at"`
	EndedAt     time.Time  `bun:"ended_at,notnull" json:"ended_at"`
	CancelledAt *time.Time `bun:"cancelled_at" json:"cancelled_at"`
	Timestamps
}

// Notification is one message to a user, unique by DedupKey, sent once.
type Notification struct {
	bun.BaseModel `bun:"table:notification"`

	ID       int64      `bun:"id,pk,autoincrement" json:"id"`
	UUID     uuid.UUID  `bun:"uuid,type:uuid,notnull,default:gen_random_uuid()" json:"uuid"`
	UserID   int64      `bun:"user_id,notnull" json:"user_id"`
	Event    string     `bun:"event,notnull" json:"event"`
	DedupKey string     `bun:"dedup_key,notnull" json:"dedup_key"`
	Text     string     `bun:"text,notnull" json:"text"`
	Sent     bool       `bun:"sent,notnull" json:"sent"`
	SentAt   *time.Time `bun:"sent_at" json:"sent_at"`
	Error    *string    `bun:"error" json:"error,omitempty"`
	Timestamps
}

// Statistics are the booking counts of one hour.
type Statistics struct {
	bun.BaseModel `bun:"table:statistics"`

	ID             int64     `bun:"id,pk,autoincrement" json:"id"`
	StatisticsAt   time.Time `bun:"statistics_at,notnull" json:"statistics_at"`
	AllCount       int       `bun:"all_count,notnull" json:"all_count"`
	AttendedCount  int       `bun:"attended_count,notnull" json:"attended_count"`
	CancelledCount int       `bun:"cancelled_count,notnull" json:"cancelled_count"`
	Timestamps
}

// Export statuses.
const (
	ExportPending   = "PENDING"
	ExportRunning   = "RUNNING"
	ExportCompleted = "COMPLETED"
	ExportFailed    = "FAILED"
	ExportExpired   = "EXPIRED"
)

// Export is a requested data download and the file it produced.
type Export struct {
	bun.BaseModel `bun:"table:export"`

	ID             int64           `bun:"id,pk,autoincrement" json:"id"`
	RequestedBy    string          `bun:"requested_by,notnull" json:"requested_by"`
	Kind           string          `bun:"kind,notnull" json:"kind"`
	Format         string          `bun:"format,notnull" json:"format"`
	Filter         json.RawMessage `bun:"filter,type:jsonb,notnull" json:"filter"`
	FilterHash     string          `bun:"filter_hash,notnull" json:"-"`
	Status         string          `bun:"status,notnull" json:"status"`
	JobExecutionID *int64          `bun:"job_execution_id" json:"job_execution_id"`
	TotalRows      *int64          `bun:"total_rows" json:"total_rows"`
	WrittenRows    int64           `bun:"written_rows,notnull" json:"written_rows"`
	FileKey        *string         `bun:"file_key" json:"file_key,omitempty"`
	SizeBytes      *int64          `bun:"size_bytes" json:"size_bytes"`
	SHA256         *string         `bun:"sha256" json:"sha256"`
	Error          *string         `bun:"error" json:"error,omitempty"`
	ExpiresAt      *time.Time      `bun:"expires_at" json:"expires_at"`
	// BOM says a CSV export starts with a UTF-8 byte order mark (default
	// true: Excel on Korean Windows needs it to read UTF-8).
	BOM bool `bun:"bom,notnull" json:"bom"`
	// TruncatedCells counts the XLSX cells cut at Excel's 32,767 characters.
	TruncatedCells int64 `bun:"truncated_cells,notnull" json:"truncated_cells"`
	Timestamps
}
