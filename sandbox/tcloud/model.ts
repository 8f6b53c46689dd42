/**
 * The state the fake Tencent Cloud keeps, as plain JSON so a rehearsal (`npm run deploy --
 * --sandbox`) and a later `npm run doctor -- --deployed --sandbox` see the same environment.
 * Field names follow the API's own (GetFunction, DescribeTable, DescribeHTTPServiceRoute…).
 */

export type FunctionStatus =
  | 'Creating'
  | 'CreateFailed'
  | 'Active'
  | 'Updating'
  | 'UpdateFailed'
  | 'Deleting'
  | 'DeleteFailed';

export interface StatusReason {
  ErrorCode: string;
  ErrorMessage: string;
}

export interface TriggerState {
  TriggerName: string;
  Type: string;
  TriggerDesc: string;
  Enable: number;
  AddTime: string;
  ModTime: string;
}

export interface CodeState {
  /** The uploaded zip, base64. */
  zip: string;
  sha256: string;
  size: number;
}

export interface FunctionState {
  FunctionName: string;
  Namespace: string;
  Runtime: string;
  Handler: string;
  Timeout: number;
  MemorySize: number;
  Description: string;
  InstallDependency: 'TRUE' | 'FALSE';
  Variables: { Key: string; Value: string }[];
  Status: FunctionStatus;
  StatusDesc: string;
  StatusReasons: StatusReason[];
  /** An operation in progress: the status it ends in, after `polls` more GetFunction looks. */
  pending?: { to: FunctionStatus; reasons: StatusReason[]; polls: number };
  code?: CodeState;
  Triggers: TriggerState[];
  AddTime: string;
  ModTime: string;
}

export interface IndexState {
  Name: string;
  Keys: { Name: string; Direction: string }[];
  Unique: boolean;
}

export interface TableState {
  TableName: string;
  Indexes: IndexState[];
}

/** HTTP 访问服务（旧）: one API per path, domain "*". */
export interface GatewayApi {
  APIId: string;
  ServiceId: string;
  Path: string;
  Type: number;
  Name: string;
  EnableAuth: boolean;
  CreateTime: number;
}

export interface HttpRoute {
  Path: string;
  UpstreamResourceType: string;
  UpstreamResourceName: string;
  EnableAuth: boolean;
  EnableSafeDomain: boolean;
  EnablePathTransmission: boolean;
  Enable: boolean;
  CreateTime: string;
  UpdateTime: string;
}

export interface HttpDomain {
  Domain: string;
  DomainType: string;
  AccessType: string;
  IsDefault: boolean;
  Enable: boolean;
  Status: string;
  Protocol: string;
  Routes: HttpRoute[];
}

export interface EnvState {
  EnvId: string;
  Alias: string;
  Region: string;
  /** The Tencent Cloud account's numeric AppId (used in the temporary COS object path). */
  AppId: string;
  /** The document database instance (DescribeEnvInfo Databases[0].InstanceId). */
  DatabaseInstanceId: string;
  /** The current HTTP access service (DescribeHTTPServiceRoute); false on an environment without it. */
  httpService: boolean;
  /** What DescribeCloudBaseGWService answers as DefaultDomain (null: documented "may be null"). */
  legacyDefaultDomain: string | null;
  functions: Record<string, FunctionState>;
  tables: Record<string, TableState>;
  gatewayApis: GatewayApi[];
  domains: HttpDomain[];
  /** `${ResourceType}:${Resource}` → the last ModifyResourcePermission. */
  permissions: Record<string, { Permission: string; SecurityRule?: string }>;
}

export interface FakeState {
  envs: Record<string, EnvState>;
  /** GetTempCosInfo grants: ObjectPath → { Date, Sign, Region }. */
  tempCos: Record<string, { Date: string; Sign: string; Region: string }>;
  /** Objects in the temporary COS buckets: `${Bucket}${Key}` → zip base64. */
  cosObjects: Record<string, string>;
  counter: number;
}

export interface EnvSpec {
  envId: string;
  region: string;
  appId?: string;
  alias?: string;
  /** Default true. */
  httpService?: boolean;
  /** Default `<envId>.service.tcloudbase.com`; null to answer null. */
  legacyDefaultDomain?: string | null;
}

/** The documented default domain of the current HTTP access service. */
export function defaultHttpDomain(envId: string, region: string): string {
  return `${envId}.${region}.app.tcloudbase.com`;
}

export function newEnv(spec: EnvSpec): EnvState {
  const httpService = spec.httpService ?? true;
  return {
    EnvId: spec.envId,
    Alias: spec.alias ?? spec.envId.replace(/-[^-]*$/, ''),
    Region: spec.region,
    AppId: spec.appId ?? '1250000000',
    DatabaseInstanceId: `tnt-${spec.envId.replace(/[^a-z0-9]/gi, '').slice(-8)}`,
    httpService,
    legacyDefaultDomain:
      spec.legacyDefaultDomain === undefined
        ? `${spec.envId}.service.tcloudbase.com`
        : spec.legacyDefaultDomain,
    functions: {},
    tables: {},
    gatewayApis: [],
    domains: httpService
      ? [
          {
            Domain: defaultHttpDomain(spec.envId, spec.region),
            DomainType: 'HTTPSERVICE',
            AccessType: 'DIRECT',
            IsDefault: true,
            Enable: true,
            Status: 'SUCCESS',
            Protocol: 'HTTP_AND_HTTPS',
            Routes: [],
          },
        ]
      : [],
    permissions: {},
  };
}
