using System.Globalization;
using Lowbit.Cuda.Ptx;

namespace Lowbit.Tests.Backends.Cuda.Ptx;

/// <summary>
/// Runs the subset of PTX that Lowbit's emitters write on the CPU, so the index math of a tensor-core kernel
/// is checked here, with no GPU. Semantics follow the PTX ISA: mma.m16n8k16 (bf16) and m16n8k32 (s8·u8) and ldmatrix
/// fragment layouts,
/// cvt.rn.bf16x2.f32 (first source to the upper half), cp.async groups with zero fill.
/// Stricter than the hardware where that finds bugs: a register read before it is written, a global access
/// outside an allocation, a misaligned 16-byte access, or a branch that splits a warp throws. Warps of a
/// block run one at a time from barrier to barrier in a shuffled order (a missing bar.sync shows as a
/// race), and cp.async lands either at issue or at the latest moment its wait_group allows
/// (<see cref="LateCopies"/>: a missing wait reads stale shared memory). wgmma.mma_async (m64nNk16 bf16, m64nNk32 s8·u8; both operands
/// from shared memory through 128-byte-swizzle descriptors) runs per warp, each warp computing its 16 rows of the
/// warpgroup's 64; with <see cref="LateMma"/> it runs at the latest wait_group its group allows, reading shared
/// memory then, and its accumulators may not be touched while it is in flight.
/// </summary>
internal sealed partial class PtxInterpreter
{
    private const ulong SharedBase = 0x400; // not 0: a missing "+ smem base" would go unnoticed
    private readonly Dictionary<string, Kernel> _kernels = [];
    private readonly List<(ulong Address, byte[] Bytes)> _global = [];
    private string? _sharedSymbol;

    public PtxInterpreter(string module)
    {
        var lines = module.Split('\n').Select(l => { int c = l.IndexOf("//", StringComparison.Ordinal); return (c >= 0 ? l[..c] : l).Trim(); })
            .Where(l => l.Length > 0).ToArray();
        for (int i = 0; i < lines.Length; i++)
        {
            if (lines[i].StartsWith(".extern .shared", StringComparison.Ordinal))
                _sharedSymbol = lines[i][(lines[i].LastIndexOf(' ') + 1)..].TrimEnd(';').Replace("[]", "", StringComparison.Ordinal);
            else if (lines[i].StartsWith(".visible .entry ", StringComparison.Ordinal))
            {
                var kernel = Kernel.Parse(lines, ref i, _sharedSymbol);
                _kernels.Add(kernel.Name, kernel);
            }
        }
    }

    /// <summary>cp.async writes shared memory at wait_group time rather than at issue.</summary>
    public bool LateCopies { get; init; }

    /// <summary>wgmma groups complete at wgmma.wait_group time rather than at issue.</summary>
    public bool LateMma { get; init; }

    /// <summary>Seed of the warp order at each barrier.</summary>
    public int Seed { get; init; } = 1;

    public IReadOnlyCollection<string> Kernels => _kernels.Keys;

    /// <summary>Global memory holding <paramref name="bytes"/>; returns its (16-byte aligned) address.</summary>
    public ulong Allocate(byte[] bytes)
    {
        ulong address = 0x1_0000_0000UL * (ulong)(_global.Count + 1);
        _global.Add((address, bytes));
        return address;
    }

    /// <summary>A copy of <paramref name="size"/> bytes of global memory at <paramref name="address"/>.</summary>
    public byte[] Read(ulong address, int size)
    {
        var (bytes, at) = Global(address, size, 1);
        return bytes.AsSpan(at, size).ToArray();
    }

    public void Launch(string entry, int gridX, int gridY, int threads, int sharedBytes, params ulong[] arguments)
    {
        var kernel = _kernels[entry];
        if (arguments.Length != kernel.Parameters.Count)
            throw new ArgumentException($"{entry} takes {kernel.Parameters.Count} parameters.");
        if (kernel.MaxThreads is int max && threads > max)
            throw new InvalidOperationException($"{entry}: {threads} threads exceed .maxntid {max}.");
        var rng = new Random(Seed);
        for (int by = 0; by < gridY; by++)
        {
            for (int bx = 0; bx < gridX; bx++)
                new Block(this, kernel, arguments, bx, by, threads, sharedBytes, rng).Run();
        }
    }

    private (byte[] Bytes, int Offset) Global(ulong address, int size, int alignment)
    {
        if (address % (ulong)alignment != 0)
            throw new InvalidOperationException($"global address 0x{address:x} is not {alignment}-byte aligned.");
        foreach (var (start, bytes) in _global)
        {
            if (address >= start && address + (ulong)size <= start + (ulong)bytes.Length)
                return (bytes, (int)(address - start));
        }
        throw new InvalidOperationException($"global access of {size} bytes at 0x{address:x} is outside every allocation.");
    }

    private enum Stop { Barrier, Done }

    /// <summary>One thread block: warps run one at a time until a barrier or the end.</summary>
    private sealed class Block
    {
        private readonly PtxInterpreter _owner;
        private readonly Kernel _kernel;
        private readonly ulong[] _arguments;
        private readonly int _bx, _by, _threads;
        private readonly byte[] _shared;
        private readonly Random _rng;
        private readonly ulong[][] _registers;
        private readonly bool[][] _written;
        private readonly bool[] _active;
        private readonly List<(ulong To, ulong From, int Bytes, int Size)>[] _uncommitted;
        private readonly Queue<List<(ulong To, ulong From, int Bytes, int Size)>>[] _groups;
        private readonly bool[][] _inFlight; // accumulators of a wgmma not yet waited for
        private readonly List<WgmmaOp>[] _wgmmaUncommitted;
        private readonly Queue<List<WgmmaOp>>[] _wgmmaGroups;

        public Block(PtxInterpreter owner, Kernel kernel, ulong[] arguments, int bx, int by, int threads, int sharedBytes, Random rng)
        {
            _owner = owner;
            _kernel = kernel;
            _arguments = arguments;
            (_bx, _by, _threads) = (bx, by, threads);
            _shared = new byte[sharedBytes];
            rng.NextBytes(_shared); // stale data from a previous block, never zeros
            _rng = rng;
            _registers = new ulong[threads][];
            _written = new bool[threads][];
            _uncommitted = new List<(ulong, ulong, int, int)>[threads];
            _groups = new Queue<List<(ulong, ulong, int, int)>>[threads];
            for (int t = 0; t < threads; t++)
            {
                _registers[t] = new ulong[kernel.Registers.Count];
                _written[t] = new bool[kernel.Registers.Count];
                _uncommitted[t] = [];
                _groups[t] = new();
            }
            _active = Enumerable.Repeat(true, threads).ToArray();
            _inFlight = Enumerable.Range(0, threads).Select(_ => new bool[kernel.Registers.Count]).ToArray();
            int warps = (threads + 31) / 32;
            _wgmmaUncommitted = Enumerable.Range(0, warps).Select(_ => new List<WgmmaOp>()).ToArray();
            _wgmmaGroups = Enumerable.Range(0, warps).Select(_ => new Queue<List<WgmmaOp>>()).ToArray();
        }

        public void Run()
        {
            int warps = (_threads + 31) / 32;
            var pcs = new int[warps];
            var done = new bool[warps];
            while (!done.All(d => d))
            {
                int atBarrier = 0;
                foreach (int wi in Enumerable.Range(0, warps).OrderBy(_ => _rng.Next()))
                {
                    if (done[wi])
                        continue;
                    if (RunWarp(wi, ref pcs[wi]) == Stop.Done)
                        done[wi] = true;
                    else
                        atBarrier++;
                }
                if (atBarrier > 0 && atBarrier != done.Count(d => !d))
                    throw new InvalidOperationException($"{_kernel.Name}: bar.sync reached by {atBarrier} warps while others exited.");
            }
        }

        private Stop RunWarp(int warp, ref int pc)
        {
            int first = warp * 32, last = Math.Min(_threads, first + 32);
            while (true)
            {
                if (pc >= _kernel.Code.Count)
                    throw new InvalidOperationException($"{_kernel.Name}: ran past the end without ret.");
                var ins = _kernel.Code[pc++];
                var lanes = new List<int>();
                for (int t = first; t < last; t++)
                {
                    if (_active[t] && (ins.Guard < 0 || (Read(t, ins.Guard, ins) != 0) != ins.Negate))
                        lanes.Add(t);
                }
                switch (ins.Op)
                {
                    case Op.Bra:
                        int running = Enumerable.Range(first, last - first).Count(t => _active[t]);
                        if (lanes.Count != 0 && lanes.Count != running)
                            throw new InvalidOperationException($"{_kernel.Name}: \"{ins.Text}\" splits warp {warp}.");
                        if (lanes.Count != 0)
                            pc = ins.Target;
                        continue;
                    case Op.Bar:
                        return Stop.Barrier;
                    case Op.Shfl:
                        if (lanes.Count != 32)
                            throw new InvalidOperationException($"{_kernel.Name}: \"{ins.Text}\" needs all 32 lanes of warp {warp}.");
                        Shfl(first, ins);
                        continue;
                    case Op.Ldmatrix or Op.Mma:
                        if (lanes.Count != 32)
                            throw new InvalidOperationException($"{_kernel.Name}: \"{ins.Text}\" needs all 32 lanes of warp {warp}.");
                        if (ins.Op == Op.Ldmatrix)
                            Ldmatrix(first, ins);
                        else
                            Mma(first, ins);
                        continue;
                    case Op.Wgmma or Op.WgmmaCommit or Op.WgmmaWait:
                        if (lanes.Count != 32)
                            throw new InvalidOperationException($"{_kernel.Name}: \"{ins.Text}\" needs all 32 lanes of warp {warp}.");
                        Wgmma(warp, ins);
                        continue;
                    case Op.Exit:
                        if (_wgmmaGroups[warp].Count + _wgmmaUncommitted[warp].Count > 0)
                            throw new InvalidOperationException($"{_kernel.Name}: warp {warp} exits with wgmma in flight.");
                        foreach (int t in lanes)
                            _active[t] = false;
                        if (!Enumerable.Range(first, last - first).Any(t => _active[t]))
                            return Stop.Done;
                        continue;
                }
                foreach (int t in lanes)
                    Execute(t, ins);
            }
        }

        private void Execute(int t, Instruction ins)
        {
            var o = ins.Operands;
            bool wide = ins.Wide, signed = ins.Signed;
            ulong Mask(ulong v) => wide ? v : v & 0xFFFF_FFFF;
            long S(Operand op) => wide ? (long)Value(t, op, ins) : (int)(uint)Value(t, op, ins);
            ulong U(int i) => Mask(Value(t, o[i], ins));
            switch (ins.Op)
            {
                case Op.LdParam:
                    Write(t, o[0], _arguments[_kernel.Parameters.IndexOf(o[1].AddressSymbol!)] & (ins.Suffixes[^1] == "u64" ? ulong.MaxValue : 0xFFFF_FFFF));
                    break;
                case Op.Mov when o[0].Vector is { } parts: // mov.b64 {lo, hi}, d
                    Write(t, parts[0], Value(t, o[1], ins) & 0xFFFF_FFFF);
                    Write(t, parts[1], Value(t, o[1], ins) >> 32);
                    break;
                case Op.Mov when o[1].Vector is { } halves: // mov.b64 d, {lo, hi}
                    Write(t, o[0], Read(t, halves[0], ins) & 0xFFFF_FFFF | Read(t, halves[1], ins) << 32);
                    break;
                case Op.Cvta or Op.Mov:
                    Write(t, o[0], Value(t, o[1], ins));
                    break;
                case Op.Add or Op.Sub or Op.Mul or Op.Div or Op.Fma or Op.Min or Op.Max or Op.Sqrt or Op.Rcp or Op.Ex2 when ins.Float is { } type:
                    {
                        double F(int i) => type == "f64" ? BitConverter.UInt64BitsToDouble(Value(t, o[i], ins)) : BitConverter.UInt32BitsToSingle((uint)Value(t, o[i], ins));
                        double result = ins.Op switch
                        {
                            Op.Add => F(1) + F(2),
                            Op.Sub => F(1) - F(2),
                            Op.Mul => F(1) * F(2),
                            Op.Div => F(1) / F(2),
                            Op.Fma => type == "f64" ? Math.FusedMultiplyAdd(F(1), F(2), F(3)) : MathF.FusedMultiplyAdd((float)F(1), (float)F(2), (float)F(3)),
                            Op.Min => Math.Min(F(1), F(2)),
                            Op.Max => double.IsNaN(F(1)) ? F(2) : double.IsNaN(F(2)) ? F(1) : Math.Max(F(1), F(2)), // PTX: NaN loses
                            Op.Sqrt => Math.Sqrt(F(1)),
                            Op.Rcp => 1.0 / F(1),
                            _ => Math.Pow(2, F(1)),
                        };
                        Write(t, o[0], type == "f64" ? BitConverter.DoubleToUInt64Bits(result) : BitConverter.SingleToUInt32Bits((float)result));
                        break;
                    }
                case Op.CvtFloat when ins.Suffixes[^1] == "s32":
                    Write(t, o[0], BitConverter.SingleToUInt32Bits((int)(uint)Value(t, o[1], ins)));
                    break;
                case Op.CvtFloat:
                    Write(t, o[0], ins.Suffixes[^2] == "f64"
                        ? BitConverter.DoubleToUInt64Bits(BitConverter.UInt32BitsToSingle((uint)Value(t, o[1], ins)))
                        : BitConverter.SingleToUInt32Bits((float)BitConverter.UInt64BitsToDouble(Value(t, o[1], ins))));
                    break;
                case Op.Min: Write(t, o[0], signed ? Mask((ulong)Math.Min(S(o[1]), S(o[2]))) : Math.Min(U(1), U(2))); break;
                case Op.WarpSync or Op.Fence: break; // the warp runs in lockstep here; proxies are one memory here
                case Op.Add: Write(t, o[0], Mask(U(1) + U(2))); break;
                case Op.Sub: Write(t, o[0], Mask(U(1) - U(2))); break;
                case Op.MulLo: Write(t, o[0], Mask(U(1) * U(2))); break;
                case Op.MadLo: Write(t, o[0], Mask(U(1) * U(2) + U(3))); break;
                case Op.MulWide:
                    Write(t, o[0], signed ? (ulong)((long)(int)(uint)Value(t, o[1], ins) * (int)(uint)Value(t, o[2], ins))
                        : (ulong)(uint)Value(t, o[1], ins) * (uint)Value(t, o[2], ins));
                    break;
                case Op.Shl: Write(t, o[0], Mask(U(1) << (int)U(2))); break;
                case Op.Shr: Write(t, o[0], signed ? Mask((ulong)(S(o[1]) >> (int)U(2))) : U(1) >> (int)U(2)); break;
                case Op.And: Write(t, o[0], U(1) & U(2)); break;
                case Op.Or: Write(t, o[0], U(1) | U(2)); break;
                case Op.Xor: Write(t, o[0], U(1) ^ U(2)); break;
                case Op.Rem: Write(t, o[0], U(1) % U(2)); break;
                case Op.Div: Write(t, o[0], U(1) / U(2)); break;
                case Op.Cvt:
                    Write(t, o[0], signed ? (ulong)(long)(int)(uint)Value(t, o[1], ins) : (uint)Value(t, o[1], ins));
                    break;
                case Op.CvtBf16x2:
                    Write(t, o[0], (ulong)Bf16((uint)Value(t, o[1], ins)) << 16 | Bf16((uint)Value(t, o[2], ins)));
                    break;
                case Op.Setp:
                    long a = S(o[1]), b = S(o[2]);
                    ulong ua = U(1), ub = U(2);
                    bool r = ins.Suffixes[0] switch
                    {
                        "lt" => signed ? a < b : ua < ub,
                        "le" => signed ? a <= b : ua <= ub,
                        "gt" => signed ? a > b : ua > ub,
                        "ge" => signed ? a >= b : ua >= ub,
                        "eq" => ua == ub,
                        "ne" => ua != ub,
                        _ => throw new NotSupportedException(ins.Text),
                    };
                    if (ins.Suffixes[1] == "and") // setp.cmp.and.type p, a, b, q
                        r &= Value(t, o[3], ins) != 0;
                    Write(t, o[0], r ? 1UL : 0);
                    break;
                case Op.AndPred: Write(t, o[0], Value(t, o[1], ins) & Value(t, o[2], ins)); break;
                case Op.Selp: Write(t, o[0], Value(t, o[3], ins) != 0 ? Value(t, o[1], ins) : Value(t, o[2], ins)); break;
                case Op.LdGlobal or Op.LdShared:
                    {
                        int[] registers = o[0].Vector ?? [o[0].Register];
                        int size = ins.Wide ? 8 : 4, total = size * registers.Length;
                        ulong address = Address(t, o[1], ins);
                        Span<byte> memory = ins.Op == Op.LdShared ? SharedSpan(address, total, total) : GlobalSpan(address, total);
                        for (int i = 0; i < registers.Length; i++)
                            Write(t, registers[i], size == 8 ? BitConverter.ToUInt64(memory[(8 * i)..]) : BitConverter.ToUInt32(memory[(4 * i)..]));
                        break;
                    }
                case Op.StGlobal or Op.StShared:
                    {
                        ulong[] values = o[1].Vector is { } vector ? vector.Select(r => Read(t, r, ins)).ToArray() : [Value(t, o[1], ins)];
                        int size = ins.Wide ? 8 : 4, total = size * values.Length;
                        ulong address = Address(t, o[0], ins);
                        Span<byte> memory = ins.Op == Op.StShared ? SharedSpan(address, total, total) : GlobalSpan(address, total);
                        for (int i = 0; i < values.Length; i++)
                        {
                            if (size == 8)
                                BitConverter.TryWriteBytes(memory[(8 * i)..], values[i]);
                            else
                                BitConverter.TryWriteBytes(memory[(4 * i)..], (uint)values[i]);
                        }
                        break;
                    }
                case Op.RedAdd:
                    {
                        var memory = GlobalSpan(Address(t, o[0], ins), 8);
                        double sum = BitConverter.ToDouble(memory) + BitConverter.UInt64BitsToDouble(Value(t, o[1], ins));
                        BitConverter.TryWriteBytes(memory, sum);
                        break;
                    }
                case Op.CpAsync:
                    {
                        // cp.async.cg: 16 bytes (zero-filled past an optional source size); .ca: 4, 8 or 16.
                        ulong to = Address(t, o[0], ins), from = Address(t, o[1], ins);
                        int bytes = (int)o[2].Immediate, size = o.Length > 3 ? (int)Value(t, o[3], ins) : bytes;
                        if (ins.Suffixes[1] == "cg" ? bytes != 16 : bytes is not (4 or 8 or 16))
                            throw new InvalidOperationException($"\"{ins.Text}\": a copy of {bytes} bytes.");
                        if (size != 0 && size != bytes)
                            throw new InvalidOperationException($"\"{ins.Text}\": expected {bytes} or 0 source bytes.");
                        SharedSpan(to, bytes, bytes);
                        if (from % (ulong)bytes != 0)
                            throw new InvalidOperationException($"\"{ins.Text}\": source 0x{from:x} is not {bytes}-byte aligned.");
                        if (_owner.LateCopies)
                            _uncommitted[t].Add((to, from, bytes, size));
                        else
                            Copy(to, from, bytes, size);
                        break;
                    }
                case Op.Commit:
                    _groups[t].Enqueue(_uncommitted[t]);
                    _uncommitted[t] = [];
                    break;
                case Op.WaitGroup or Op.WaitAll:
                    if (ins.Op == Op.WaitAll)
                    {
                        _groups[t].Enqueue(_uncommitted[t]);
                        _uncommitted[t] = [];
                    }
                    int keep = ins.Op == Op.WaitAll ? 0 : (int)o[0].Immediate;
                    while (_groups[t].Count > keep)
                    {
                        foreach (var (to, from, bytes, size) in _groups[t].Dequeue())
                            Copy(to, from, bytes, size);
                    }
                    break;
                default:
                    throw new NotSupportedException(ins.Text);
            }
        }

        private void Copy(ulong to, ulong from, int bytes, int size)
        {
            var destination = SharedSpan(to, bytes, bytes);
            destination.Clear();
            if (size > 0)
                GlobalSpan(from, size).CopyTo(destination);
        }

        private Span<byte> GlobalSpan(ulong address, int size)
        {
            var (bytes, at) = _owner.Global(address, size, size);
            return bytes.AsSpan(at, size);
        }

        /// <summary>shfl.sync.bfly / .idx over the whole warp: lane l reads the source of lane l ^ b (bfly) or b (idx).</summary>
        private void Shfl(int first, Instruction ins)
        {
            var o = ins.Operands;
            var source = new ulong[32];
            for (int l = 0; l < 32; l++)
                source[l] = Value(first + l, o[1], ins);
            for (int l = 0; l < 32; l++)
            {
                int b = (int)Value(first + l, o[2], ins);
                Write(first + l, o[0], source[ins.Suffixes[1] == "bfly" ? l ^ b : b & 31]);
            }
        }

        /// <summary>ldmatrix .x4: lane 8i+j gives the address of row j of matrix i; lane l receives, in register i,
        /// the 32-bit word (l % 4) of row l / 4 of matrix i, or with .trans the elements of column l / 4 in rows
        /// 2(l % 4) and 2(l % 4) + 1 (first in the low half).</summary>
        private void Ldmatrix(int first, Instruction ins)
        {
            var rows = new ulong[32];
            for (int l = 0; l < 32; l++)
                rows[l] = Address(first + l, ins.Operands[1], ins);
            bool transposed = ins.Suffixes.Contains("trans");
            ushort Element(int matrix, int row, int column) => BitConverter.ToUInt16(SharedSpan(rows[8 * matrix + row], 16, 16)[(2 * column)..]);
            for (int l = 0; l < 32; l++)
            {
                for (int i = 0; i < 4; i++)
                {
                    uint word = transposed
                        ? Element(i, 2 * (l % 4), l / 4) | (uint)Element(i, 2 * (l % 4) + 1, l / 4) << 16
                        : BitConverter.ToUInt32(SharedSpan(rows[8 * i + l / 4], 16, 16)[(4 * (l % 4))..]);
                    Write(first + l, ins.Operands[0].Vector![i], word);
                }
            }
        }

        /// <summary>D = A·B + C for m16n8k16 bf16 (f32 accumulators) or m16n8k32 with A s8 and B u8 (s32 accumulators,
        /// wrapping as without .satfinite), PTX ISA "Matrix Fragments for mma.m16n8k16 / m16n8k32"; g = lane / 4, q = lane % 4,
        /// E elements a register (2 bf16 or 4 int8, the first in the lowest bits): A register r holds row g + 8(r % 2),
        /// columns E·q + 4E·(r / 2) + 0..E−1; B register r holds rows (k) E·q + 4E·r + 0..E−1 of column g; C/D register r
        /// holds row g + 8(r / 2), column 2q + r % 2.</summary>
        private void Mma(int first, Instruction ins)
        {
            var o = ins.Operands;
            bool integer = ins.Suffixes[^1] == "s32";
            int perRegister = integer ? 4 : 2, depth = 8 * perRegister;
            double A(uint word, int e) => integer ? (sbyte)(word >> (8 * e)) : FromBf16(word >> (16 * e) & 0xFFFF);
            double B(uint word, int e) => integer ? (byte)(word >> (8 * e)) : FromBf16(word >> (16 * e) & 0xFFFF);
            var a = new double[16, depth];
            var b = new double[depth, 8];
            var c = new double[16, 8];
            for (int l = 0; l < 32; l++)
            {
                int g = l / 4, q = l % 4, t = first + l;
                for (int r = 0; r < 4; r++)
                {
                    uint word = (uint)Read(t, o[1].Vector![r], ins);
                    for (int e = 0; e < perRegister; e++)
                        a[g + 8 * (r % 2), perRegister * q + 4 * perRegister * (r / 2) + e] = A(word, e);
                    uint accumulator = (uint)Read(t, o[3].Vector![r], ins);
                    c[g + 8 * (r / 2), 2 * q + r % 2] = integer ? (int)accumulator : BitConverter.UInt32BitsToSingle(accumulator);
                }
                for (int r = 0; r < 2; r++)
                {
                    uint word = (uint)Read(t, o[2].Vector![r], ins);
                    for (int e = 0; e < perRegister; e++)
                        b[perRegister * q + 4 * perRegister * r + e, g] = B(word, e);
                }
            }
            for (int l = 0; l < 32; l++)
            {
                int g = l / 4, q = l % 4;
                for (int r = 0; r < 4; r++)
                {
                    int row = g + 8 * (r / 2), col = 2 * q + r % 2;
                    double sum = c[row, col];
                    for (int kk = 0; kk < depth; kk++)
                        sum += a[row, kk] * b[kk, col]; // integer: exact in a double (|sum| < 2^53)
                    Write(first + l, o[0].Vector![r], integer ? (uint)(int)(long)sum : BitConverter.SingleToUInt32Bits((float)sum));
                }
            }
        }

        private sealed record WgmmaOp(Instruction Instruction, ulong DescriptorA, ulong DescriptorB, bool ScaleD);

        /// <summary>wgmma.mma_async / commit_group / wait_group for one warp (its part of the warpgroup).</summary>
        private void Wgmma(int warp, Instruction ins)
        {
            int first = warp * 32;
            var o = ins.Operands;
            switch (ins.Op)
            {
                case Op.WgmmaCommit:
                    _wgmmaGroups[warp].Enqueue(_wgmmaUncommitted[warp]);
                    _wgmmaUncommitted[warp] = [];
                    return;
                case Op.WgmmaWait:
                    while (_wgmmaGroups[warp].Count > (int)o[0].Immediate)
                    {
                        foreach (var op in _wgmmaGroups[warp].Dequeue())
                            RunWgmma(warp, op);
                    }
                    return;
            }
            bool integer = ins.Suffixes[^3] == "s32";
            if (integer ? o.Length != 4 : o[4].Immediate != 1 || o[5].Immediate != 1 || o[6].Immediate != 0 || o[7].Immediate != 0)
                throw new NotSupportedException($"\"{ins.Text}\": only unscaled, untransposed (K-major) operands.");
            ulong Uniform(Operand operand)
            {
                ulong value = Value(first, operand, ins);
                for (int l = 1; l < 32; l++)
                {
                    if (Value(first + l, operand, ins) != value)
                        throw new InvalidOperationException($"{_kernel.Name}: \"{ins.Text}\": {operand.Text} differs between the lanes of warp {warp}.");
                }
                return value;
            }
            var wgmma = new WgmmaOp(ins, Uniform(o[1]), Uniform(o[2]), Uniform(o[3]) != 0);
            if (!_owner.LateMma)
            {
                RunWgmma(warp, wgmma);
                return;
            }
            _wgmmaUncommitted[warp].Add(wgmma);
            for (int l = 0; l < 32; l++)
            {
                foreach (int r in o[0].Vector!)
                {
                    if (!_inFlight[first + l][r])
                        Read(first + l, r, ins); // the accumulators hold values when the first wgmma of a chain is issued
                    _inFlight[first + l][r] = true;
                }
            }
        }

        /// <summary>
        /// D = A·B (+ D when scale-d) for this warp's 16 rows (16·(warp mod 4)..) of the m64nNk16 product. Operand
        /// element (row, k) of a K-major, 128-byte-swizzled tile: linear address start + (row / 8)·stride +
        /// (row mod 8)·128 + 2k, whose 16-byte chunk bits [6:4] are XORed with bits [9:7] (PTX ISA, "Shared Memory
        /// Matrix Layout", Swizzle&lt;3,4,3&gt;). D register i of lane l holds row l/4 + 8·((i mod 4)/2), column
        /// 8·(i/4) + 2·(l mod 4) + i mod 2: mma.m16n8's C layout repeated along N.
        /// </summary>
        private void RunWgmma(int warp, WgmmaOp op)
        {
            var ins = op.Instruction;
            int[] d = ins.Operands[0].Vector!;
            int n = int.Parse(ins.Suffixes[3][(ins.Suffixes[3].IndexOf('n') + 1)..ins.Suffixes[3].IndexOf('k')], CultureInfo.InvariantCulture);
            if (d.Length != n / 2)
                throw new InvalidOperationException($"\"{ins.Text}\": {d.Length} accumulators for n = {n}.");
            int first = warp * 32, rowBase = 16 * (warp % 4);
            // bf16: k16, two bytes an element; integer: k32 of A s8 and B u8, one byte an element (same 32-byte k step).
            bool integer = ins.Suffixes[^3] == "s32";
            int depth = integer ? 32 : 16, size = integer ? 1 : 2;
            double Element(ulong descriptor, int row, int k, bool isA)
            {
                if (descriptor >> 62 != 1 || (descriptor >> 49 & 7) != 0)
                    throw new NotSupportedException($"\"{ins.Text}\": descriptor 0x{descriptor:x} is not a 128-byte swizzle at base offset 0.");
                ulong start = (descriptor & 0x3FFF) << 4, stride = (descriptor >> 32 & 0x3FFF) << 4;
                ulong linear = start + (ulong)(row / 8) * stride + (ulong)(row % 8) * 128 + (ulong)(size * k);
                ulong physical = linear ^ (linear >> 7 & 7) << 4;
                var bytes = SharedSpan(physical, size, size);
                return integer ? isA ? (sbyte)bytes[0] : bytes[0] : FromBf16(BitConverter.ToUInt16(bytes));
            }
            var a = new double[16, depth];
            var b = new double[n, depth];
            for (int k = 0; k < depth; k++)
            {
                for (int r = 0; r < 16; r++)
                    a[r, k] = Element(op.DescriptorA, rowBase + r, k, isA: true);
                for (int c = 0; c < n; c++)
                    b[c, k] = Element(op.DescriptorB, c, k, isA: false);
            }
            for (int l = 0; l < 32; l++)
            {
                int t = first + l;
                for (int i = 0; i < d.Length; i++)
                {
                    int row = l / 4 + 8 * (i % 4 / 2), col = 8 * (i / 4) + 2 * (l % 4) + i % 2;
                    _inFlight[t][d[i]] = false;
                    uint previous = op.ScaleD ? (uint)Read(t, d[i], ins) : 0;
                    double sum = integer ? (int)previous : BitConverter.UInt32BitsToSingle(previous);
                    for (int k = 0; k < depth; k++)
                        sum += a[row, k] * b[col, k]; // integer: exact in a double (|sum| < 2^53)
                    Write(t, d[i], integer ? (uint)(int)(long)sum : BitConverter.SingleToUInt32Bits((float)sum));
                }
            }
        }

        private Span<byte> SharedSpan(ulong address, int size, int alignment)
        {
            if (address % (ulong)alignment != 0 || address < SharedBase || address - SharedBase + (ulong)size > (ulong)_shared.Length)
                throw new InvalidOperationException($"{_kernel.Name}: shared access at 0x{address:x} is misaligned or outside the {_shared.Length} bytes.");
            return _shared.AsSpan((int)(address - SharedBase), size);
        }

        private ulong Address(int t, Operand o, Instruction ins) => Read(t, o.AddressRegister, ins) + (ulong)o.Offset;

        private ulong Value(int t, Operand o, Instruction ins) => o switch
        {
            { Register: >= 0 } => Read(t, o.Register, ins),
            { Special: "%tid.x" } => (ulong)t,
            { Special: "%ntid.x" } => (ulong)_threads,
            { Special: "%ctaid.x" } => (ulong)_bx,
            { Special: "%ctaid.y" } => (ulong)_by,
            { IsImmediate: true } => o.Immediate,
            _ => throw new InvalidOperationException($"\"{ins.Text}\": operand {o.Text} has no value."),
        };

        private ulong Read(int t, int register, Instruction ins) => _inFlight[t][register]
            ? throw new InvalidOperationException($"{_kernel.Name}: \"{ins.Text}\" touches {_kernel.Registers.First(p => p.Value == register).Key} while a wgmma writes it (thread {t}).")
            : _written[t][register] ? _registers[t][register]
            : throw new InvalidOperationException($"{_kernel.Name}: \"{ins.Text}\" reads {_kernel.Registers.First(p => p.Value == register).Key} before it is written (thread {t}).");

        private void Write(int t, Operand o, ulong value) => Write(t, o.Register, value);

        private void Write(int t, int register, ulong value)
        {
            if (_inFlight[t][register])
                throw new InvalidOperationException($"{_kernel.Name}: {_kernel.Registers.First(p => p.Value == register).Key} is written while a wgmma writes it (thread {t}).");
            _registers[t][register] = value;
            _written[t][register] = true;
        }
    }

    /// <summary>Round to nearest even (finite inputs).</summary>
    public static uint Bf16(uint bits) => (bits + 0x7FFF + (bits >> 16 & 1)) >> 16;

    public static double FromBf16(uint bits) => BitConverter.UInt32BitsToSingle(bits << 16);
}
