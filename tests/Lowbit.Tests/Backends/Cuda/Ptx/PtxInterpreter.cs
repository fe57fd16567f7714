using System.Globalization;
using Lowbit.Cuda.Ptx;

namespace Lowbit.Tests.Backends.Cuda.Ptx;

/// <summary>
/// Runs the subset of PTX that Lowbit's emitters write on the CPU, so the index math of a tensor-core kernel
/// is checked here, with no GPU. Semantics follow the PTX ISA: mma.m16n8k16 and ldmatrix fragment layouts,
/// cvt.rn.bf16x2.f32 (first source to the upper half), cp.async groups with zero fill.
/// Stricter than the hardware where that finds bugs: a register read before it is written, a global access
/// outside an allocation, a misaligned 16-byte access, or a branch that splits a warp throws. Warps of a
/// block run one at a time from barrier to barrier in a shuffled order (a missing bar.sync shows as a
/// race), and cp.async lands either at issue or at the latest moment its wait_group allows
/// (<see cref="LateCopies"/>: a missing wait reads stale shared memory).
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
                    case Op.Exit:
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
                case Op.Add or Op.Sub or Op.Mul or Op.Div or Op.Fma or Op.Min or Op.Sqrt or Op.Rcp or Op.Ex2 when ins.Float is { } type:
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
                            Op.Sqrt => Math.Sqrt(F(1)),
                            Op.Rcp => 1.0 / F(1),
                            _ => Math.Pow(2, F(1)),
                        };
                        Write(t, o[0], type == "f64" ? BitConverter.DoubleToUInt64Bits(result) : BitConverter.SingleToUInt32Bits((float)result));
                        break;
                    }
                case Op.CvtFloat:
                    Write(t, o[0], ins.Suffixes[^2] == "f64"
                        ? BitConverter.DoubleToUInt64Bits(BitConverter.UInt32BitsToSingle((uint)Value(t, o[1], ins)))
                        : BitConverter.SingleToUInt32Bits((float)BitConverter.UInt64BitsToDouble(Value(t, o[1], ins))));
                    break;
                case Op.Min: Write(t, o[0], signed ? Mask((ulong)Math.Min(S(o[1]), S(o[2]))) : Math.Min(U(1), U(2))); break;
                case Op.WarpSync: break; // the warp runs in lockstep here
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
        /// the 32-bit word (l % 4) of row l / 4 of matrix i.</summary>
        private void Ldmatrix(int first, Instruction ins)
        {
            var rows = new ulong[32];
            for (int l = 0; l < 32; l++)
                rows[l] = Address(first + l, ins.Operands[1], ins);
            for (int l = 0; l < 32; l++)
            {
                for (int i = 0; i < 4; i++)
                    Write(first + l, ins.Operands[0].Vector![i], BitConverter.ToUInt32(SharedSpan(rows[8 * i + l / 4], 16, 16)[(4 * (l % 4))..]));
            }
        }

        /// <summary>D = A·B + C for m16n8k16 (PTX ISA "Matrix Fragments for mma.m16n8k16"), g = lane / 4, q = lane % 4:
        /// A register r holds row g + 8(r % 2), columns 2q + 8(r / 2) + {0, 1}; B register r holds rows (k)
        /// 2q + 8r + {0, 1} of column g; C/D register r holds row g + 8(r / 2), column 2q + r % 2.</summary>
        private void Mma(int first, Instruction ins)
        {
            var o = ins.Operands;
            var a = new double[16, 16];
            var b = new double[16, 8];
            var c = new double[16, 8];
            for (int l = 0; l < 32; l++)
            {
                int g = l / 4, q = l % 4, t = first + l;
                for (int r = 0; r < 4; r++)
                {
                    uint word = (uint)Read(t, o[1].Vector![r], ins);
                    a[g + 8 * (r % 2), 2 * q + 8 * (r / 2)] = FromBf16(word & 0xFFFF);
                    a[g + 8 * (r % 2), 2 * q + 8 * (r / 2) + 1] = FromBf16(word >> 16);
                    c[g + 8 * (r / 2), 2 * q + r % 2] = BitConverter.UInt32BitsToSingle((uint)Read(t, o[3].Vector![r], ins));
                }
                for (int r = 0; r < 2; r++)
                {
                    uint word = (uint)Read(t, o[2].Vector![r], ins);
                    b[2 * q + 8 * r, g] = FromBf16(word & 0xFFFF);
                    b[2 * q + 8 * r + 1, g] = FromBf16(word >> 16);
                }
            }
            for (int l = 0; l < 32; l++)
            {
                int g = l / 4, q = l % 4;
                for (int r = 0; r < 4; r++)
                {
                    int row = g + 8 * (r / 2), col = 2 * q + r % 2;
                    double sum = c[row, col];
                    for (int kk = 0; kk < 16; kk++)
                        sum += a[row, kk] * b[kk, col];
                    Write(first + l, o[0].Vector![r], BitConverter.SingleToUInt32Bits((float)sum));
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

        private ulong Read(int t, int register, Instruction ins) => _written[t][register] ? _registers[t][register]
            : throw new InvalidOperationException($"{_kernel.Name}: \"{ins.Text}\" reads {_kernel.Registers.First(p => p.Value == register).Key} before it is written (thread {t}).");

        private void Write(int t, Operand o, ulong value) => Write(t, o.Register, value);

        private void Write(int t, int register, ulong value)
        {
            _registers[t][register] = value;
            _written[t][register] = true;
        }
    }

    /// <summary>Round to nearest even (finite inputs).</summary>
    public static uint Bf16(uint bits) => (bits + 0x7FFF + (bits >> 16 & 1)) >> 16;

    public static double FromBf16(uint bits) => BitConverter.UInt32BitsToSingle(bits << 16);
}
