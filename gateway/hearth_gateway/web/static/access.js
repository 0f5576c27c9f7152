// What the signed-in role may do, from the gateway's own role table (/ui/roles.json, made
// from hearth.roles), with the reason when not. The API still decides: a 403 it answers is
// shown as it comes.

const yes = { ok: true, why: "" };
const no = (why) => ({ ok: false, why });

export class Access {
  constructor(me, table) {
    this.me = me; // {id, email, role}
    this.permissions = new Set(table[me.role] || []);
  }

  has(permission) {
    return this.permissions.has(permission);
  }

  create() {
    if (this.has("create")) return yes;
    return no(`Role ${this.me.role} cannot create resources (needs contributor, user or admin).`);
  }

  /** Change or delete a resource whose `createdBy` is given (an email or a user ID). */
  change(createdBy, verb = "change") {
    if (this.has("edit-others")) return yes;
    if (this.has("edit-own")) {
      if (createdBy && (createdBy === this.me.id || createdBy === this.me.email)) return yes;
      return no(`Role ${this.me.role} may ${verb} only what it created; this was created by ${createdBy || "someone else"}.`);
    }
    return no(`Role ${this.me.role} cannot ${verb} resources (needs contributor for its own, user or admin).`);
  }

  ownKeys() {
    if (this.has("manage-own-keys")) return yes;
    return no(`Role ${this.me.role} cannot manage API keys.`);
  }

  manageUsers() {
    if (this.has("manage-users")) return yes;
    return no(`Role ${this.me.role} cannot add users or change roles (needs admin).`);
  }

  inference() {
    if (this.has("inference")) return yes;
    return no(`Role ${this.me.role} cannot run inference.`);
  }
}
